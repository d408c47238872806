package main

import (
	"os/user"
	"regexp"
	"strings"
	"testing"
)

// TestOperatorNamedInRecords: what an operator changes with the CLI is
// recorded under their name: --as NAME, else their OS user; a name that
// would garble the records is refused.
func TestOperatorNamedInRecords(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	id := report(t, s, dir, "rita@reporter.example", "crash in parser", 1)
	run := func(want int, args ...string) string {
		t.Helper()
		code, out, errOut := runCVD(t, dir, nil, append(args, "--config", cfg)...)
		if code != want {
			t.Fatalf("cvd %v: exit %d, want %d\n%s%s", args, code, want, out, errOut)
		}
		return out + errOut
	}
	run(0, "--as", "alice", "incident", "confirm", id)
	run(0, "incident", "set", id, "note", "reproduced", "--as=bob")
	run(0, "incident", "fixing", id)
	if out := run(2, "--as", "eve\ncvd", "incident", "close", id); !strings.Contains(out, "without spaces or control characters") {
		t.Errorf("a name with a newline: %s", out)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	show := run(0, "incident", "show", id)
	for _, want := range []string{`state\s+cli:alice: `, `fact\s+cli:bob: note set`, `state\s+cli:` + regexp.QuoteMeta(me.Username) + `: .*fixing`} {
		if !regexp.MustCompile(want).MatchString(show) {
			t.Errorf("timeline lacks %q:\n%s", want, show)
		}
	}
	if strings.Contains(show, "cli:operator") || strings.Contains(show, "eve") {
		t.Errorf("timeline:\n%s", show)
	}
}
