package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/cvd-project/cvd/internal/cvdtest"
)

// TestOperatorNamedOutsideIncidents: triage accept and drop, queue retry
// and drop and member password are recorded under the operator's name
// (--as): in 'cvd audit', and an accepted report in its incident's
// timeline.
func TestOperatorNamedOutsideIncidents(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	addTeamKey(t, dir, cfg, "Cora Coordinator", "cora@example.org")
	cvdtest.SetConfig(t, cfg, "per_sender", "1")
	// Nothing listens at the smarthost: mail stays deferred in the queue.
	useSmarthost(t, cfg, cvdtest.FreeAddr(t), "none")
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	run := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCVD(t, dir, nil, append(args, "--config", cfg)...)
		if code != 0 {
			t.Fatalf("cvd %v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out
	}
	for i := range 3 {
		if err := smtpSend(s.addr, "rita@reporter.example", "From: Rita <rita@reporter.example>\r\nTo: security@example.org\r\nSubject: crash "+
			string(rune('a'+i))+"\r\n\r\nThe parser crashes.\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	var waiting []string
	waitFor(t, "two reports in triage", func() bool { waiting = triageIDs(t, dir, cfg); return len(waiting) == 2 }, s.logs)
	out := run("--as", "alice", "triage", "accept", waiting[0])
	inc := regexp.MustCompile(`incident (\d{4}-\d{3})`).FindStringSubmatch(out)
	if inc == nil {
		t.Fatalf("triage accept: %s", out)
	}
	if show := run("incident", "show", inc[1]); !regexp.MustCompile(`cli:alice: report ` + waiting[0] + ` accepted from triage`).MatchString(show) {
		t.Errorf("the incident's timeline does not name alice:\n%s", show)
	}
	run("triage", "drop", waiting[1], "--as", "bob")

	deferred := regexp.MustCompile(`(?m)^(\d+) +\S+ +deferred `)
	var rows [][]string
	waitFor(t, "two deferred queue rows", func() bool {
		rows = deferred.FindAllStringSubmatch(run("queue", "list"), -1)
		return len(rows) >= 2
	}, s.logs)
	run("--as", "carol", "queue", "retry", rows[0][1])
	run("--as", "dave", "queue", "drop", rows[1][1])
	run("--as", "erin", "member", "password", "cora@example.org")

	audit := run("audit")
	for _, want := range []string{
		`cli:alice +triage accept +report ` + waiting[0] + ` +incident ` + inc[1] + ` opened`,
		`cli:bob +triage drop +report ` + waiting[1] + ` +from rita@reporter.example`,
		`cli:carol +queue retry +queue row ` + rows[0][1] + `\b`,
		`cli:dave +queue drop +queue row ` + rows[1][1] + ` +was deferred`,
		`cli:erin +member password +cora@example.org +created an IMAP account`,
	} {
		if !regexp.MustCompile(`(?m)^\S+ +` + want).MatchString(audit) {
			t.Errorf("cvd audit lacks %q:\n%s", want, audit)
		}
	}
	if n := strings.Count(audit, "\n"); n != 6 {
		t.Errorf("cvd audit has %d lines, want a header and 5:\n%s", n, audit)
	}
}
