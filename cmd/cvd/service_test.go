package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

// TestInitThenAdminCommands: right after 'cvd init', before any 'cvd
// serve', the admin commands work on the new (empty) database.
func TestInitThenAdminCommands(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	for _, args := range [][]string{
		{"queue", "list"},
		{"queue", "list", "--all"},
		{"spool", "list"},
		{"incident", "list"},
		{"triage", "list"},
		{"member", "list", "announce"},
	} {
		code, out, errOut := runCVD(t, dir, nil, append(args, "--config", cfg)...)
		if code != 0 {
			t.Errorf("cvd %s after init: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
	}
	// And the database init made is the one 'cvd serve' then uses.
	runCVD(t, dir, nil, "list", "create", "team-notes", "--config", cfg)
	s := startCVD(t, dir, nil, "--config", cfg)
	s.stop(t)
	code, out, errOut := runCVD(t, dir, nil, "member", "list", "team-notes", "--config", cfg)
	if code != 0 {
		t.Errorf("list created before the first serve is gone: exit %d\n%s%s", code, out, errOut)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCVD(t, t.TempDir(), nil, "version")
	if code != 0 || !strings.HasPrefix(out, "cvd ") || !strings.Contains(out, "schema ") {
		t.Fatalf("cvd version: exit %d, %q", code, out)
	}
	got := revision([]debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0d68e64c8243bb0fe55853a9d4e5878f4376697d"},
		{Key: "vcs.time", Value: "2026-11-29T21:27:17Z"}, {Key: "vcs.modified", Value: "true"}})
	if want := "0d68e64c8243bb0fe55853a9d4e5878f4376697d 2026-11-29T21:27:17Z (modified)"; got != want {
		t.Errorf("revision = %q, want %q", got, want)
	}
	if got := revision(nil); got != "" {
		t.Errorf("revision without VCS facts = %q, want none", got)
	}
}
