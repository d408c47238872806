package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// walkthroughCommands returns the command lines of the README's "walk
// through an incident with the CLI", block by block, as written.
func walkthroughCommands(t *testing.T) [][]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "**A walk through an incident with the CLI**")
	j := strings.Index(s, "**The same by signed email.**")
	if i < 0 || j < i {
		t.Fatal("README.md has no incident walk-through")
	}
	var blocks [][]string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)\n *```").FindAllStringSubmatch(s[i:j], -1) {
		var cmds []string
		for _, l := range strings.Split(m[1], "\n") {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, "cvd ") {
				cmds = append(cmds, l)
			}
		}
		blocks = append(blocks, cmds)
	}
	if len(blocks) < 4 {
		t.Fatalf("the walk-through has %d command blocks", len(blocks))
	}
	return blocks
}

// TestREADMEWalkthrough runs the README's incident walk-through top to
// bottom as written, with the setup it describes: every command must
// succeed. Only the incident ID (the year's first) and the public date
// (the one --propose prints, as a reader would take it) are the run's own;
// the date passes by moving cvd's clock.
func TestREADMEWalkthrough(t *testing.T) {
	deb := gpgtest.New(t, "Debian Security", "team@security.debian.example", "never")
	w := newDeskWorldInit(t, []string{"--project", "libexample"}, deb)
	w.start("")
	id := w.report("Heap overflow", "A long header overflows a heap buffer.")
	work := t.TempDir()
	os.WriteFile(filepath.Join(work, "description.txt"), []byte("A header longer than 64 KiB overflows a heap buffer in the parser.\n"), 0o600)
	// The reader's own files, which step 5 attaches to the pre-notification.
	patch := "From: Fay Fixer <fay@example.org>\nSubject: [PATCH] parser: bound the header length\n\n---\n--- a/parser.c\n+++ b/parser.c\n@@ -1 +1 @@\n-x\n+y\n"
	os.WriteFile(filepath.Join(work, "0001-fix.patch"), []byte(patch), 0o600)
	os.WriteFile(filepath.Join(work, "0001-fix-1.3.patch"), []byte(patch), 0o600)
	os.WriteFile(filepath.Join(work, "repro.tar.xz"), []byte{0xfd, '7', 'z', 'X', 'Z', 0}, 0o600)
	date := ""
	run := func(line string) string {
		t.Helper()
		cmdline := strings.ReplaceAll(line, "2026-001", id)
		if date != "" {
			cmdline = strings.ReplaceAll(cmdline, "2026-12-03T10:00Z", date)
		}
		cmd := exec.Command("sh", "-c", cmdline)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(cvdtest.Bin)+":"+os.Getenv("PATH"), "CVD_CONFIG="+w.cfg, "GORACE=atexit_sleep_ms=0")
		cmd.Env = append(cmd.Env, w.env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("README walk-through: %s\n(run as: %s)\n%v\n%s", line, cmdline, err, out)
		}
		return string(out)
	}
	for _, block := range walkthroughCommands(t) {
		for _, line := range block {
			if strings.Contains(line, "incident report") && w.env == nil {
				// Step 6: the date passes while cvd runs.
				w.s.stop(t)
				d, _ := time.Parse("2006-01-02T15:04Z", date)
				w.start(d.Add(time.Minute).Sub(time.Now()).Round(time.Second).String())
				waitFor(t, "the release", func() bool {
					return strings.Contains(w.cli(0, "incident", "show", id), id+": published")
				}, w.s.logs)
			}
			out := run(line)
			switch {
			case strings.Contains(line, "--propose"):
				m := regexp.MustCompile(`embargo \S+ (\S+)\)`).FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("%s printed no date:\n%s", line, out)
				}
				date = m[1]
			case strings.Contains(line, "--report") && !strings.Contains(out, "A long header overflows a heap buffer."):
				t.Errorf("%s:\n%s", line, out)
			case strings.Contains(line, "--request") && !strings.Contains(out, "To: cve-request@cna.example"):
				t.Errorf("%s:\n%s", line, out)
			case strings.Contains(line, "notify") && !strings.Contains(out, deb.Email):
				t.Errorf("%s:\n%s", line, out)
			}
		}
	}
	if out := w.cli(0, "incident", "show", id); !strings.Contains(out, id+": closed") || !strings.Contains(out, "CVE-2026-12345") {
		t.Errorf("after the walk-through:\n%s", out)
	}
}
