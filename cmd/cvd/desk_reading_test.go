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

// gitRun runs git in dir as a fixed author and returns its output.
func gitRun(t *testing.T, dir string, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Fay Fixer", "GIT_AUTHOR_EMAIL=fay@example.org",
		"GIT_COMMITTER_NAME=Fay Fixer", "GIT_COMMITTER_EMAIL=fay@example.org", "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1")
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// newRepo makes a git repository holding parser.c at its first commit.
func newRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	gitRun(t, dir, "", "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(dir, "parser.c"), []byte("int parse(const char *s) {\n\treturn s[0];\n}\n"), 0o644)
	gitRun(t, dir, "", "add", "parser.c")
	gitRun(t, dir, "", "commit", "-q", "-m", "parser")
	return dir
}

// TestDeskReading is a coordinator without a mail client reading an
// incident from the CLI: the list of incidents with titles, publication
// dates and deadlines, the agenda in time order (and mailed to the team a
// week later, encrypted), the original report, the thread, and the
// patches posted to the list as an mbox that git am applies.
func TestDeskReading(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is not installed (the test script installs it)")
	}
	deb := gpgtest.New(t, "Debian Security", "security@debian.example", "never")
	w := newDeskWorld(t, deb)
	cvdtest.SetConfig(t, w.cfg, "agenda_every", `"7d"`)
	w.start("")
	a := w.report("parser crash", "The parser crashes on empty input: run parse(\"\").")
	b := w.report("another thing", "Something else.")
	listA := "security+" + a + "@example.org"

	w.cli(0, "incident", "confirm", a)
	w.cli(0, "incident", "set", a, "title", "Parser crash on empty input")
	w.cli(0, "incident", "set", a, "description", "An empty input crashes the parser.")
	w.cli(0, "incident", "versions", a, "libexample", "--introduced", "1.0", "--fixed", "1.2.3")
	date := time.Now().UTC().Add(72 * time.Hour).Truncate(time.Hour)
	w.cli(0, "incident", "embargo", a, date.Format("2006-01-02T15:04Z"))
	w.cli(0, "incident", "notify", a)
	w.waitText(deb, 0, "Upcoming")

	// The fixer's patches: one from git format-patch, one plain diff.
	repo := newRepo(t)
	os.WriteFile(filepath.Join(repo, "parser.c"), []byte("int parse(const char *s) {\n\tif (!s[0])\n\t\treturn -1;\n\treturn s[0];\n}\n"), 0o644)
	gitRun(t, repo, "", "commit", "-q", "-am", "parser: refuse empty input")
	formatPatch := gitRun(t, repo, "", "format-patch", "-1", "--stdout")
	os.WriteFile(filepath.Join(repo, "parser.c"), []byte("int parse(const char *s) {\n\tif (!s || !s[0])\n\t\treturn -1;\n\treturn s[0];\n}\n"), 0o644)
	diff := gitRun(t, repo, "", "diff")

	w.send(deb, listA, "", "Thanks, we will be ready.\n")
	w.waitText(w.cora, 0, "Thanks, we will be ready.")
	w.send(w.cora, listA, "Content-Type: multipart/mixed; boundary=\"p1\"\r\n",
		"--p1\nContent-Type: text/plain; charset=utf-8\n\nx-list: "+a+"\nHere is the fix, and a second hardening.\n"+
			"--p1\nContent-Type: text/x-patch; name=\"0001-parser-refuse-empty-input.patch\"\nContent-Disposition: attachment; filename=\"0001-parser-refuse-empty-input.patch\"\n\n"+formatPatch+
			"--p1\nContent-Type: text/plain; charset=utf-8\nContent-Disposition: attachment; filename=\"null-check.diff\"\n\n"+diff+
			"--p1--\n")
	w.waitText(deb, 0, "Here is the fix")

	// Hostile patches: a member's format-patch forging cvd's signature
	// field, and a non-member's patch (held, never in the mbox).
	os.WriteFile(filepath.Join(repo, "NOTES"), []byte("packaging notes\n"), 0o644)
	gitRun(t, repo, "", "add", "NOTES")
	gitRun(t, repo, "", "commit", "-q", "-m", "notes for packagers")
	debPatch := gitRun(t, repo, "", "format-patch", "-1", "--stdout")
	debPatch = strings.Replace(debPatch, "\nSubject:", "\nX-Cvd-Signature: good by "+w.cora.Fpr+"\nSubject:", 1)
	w.send(deb, listA, "Content-Type: multipart/mixed; boundary=\"p2\"\r\n",
		"--p2\nContent-Type: text/plain; charset=utf-8\n\nNotes for packagers attached.\n"+
			"--p2\nContent-Type: text/x-patch\nContent-Disposition: attachment; filename=\"0001-notes.patch\"\n\n"+debPatch+"--p2--\n")
	w.waitText(w.cora, 0, "Notes for packagers attached.")
	mallory := gpgtest.New(t, "Mallory", "mallory@evil.example", "never")
	mallory.Import(w.cora.Pub)
	projectPub, _ := os.ReadFile(filepath.Join(w.dir, "keys/project.pub.asc"))
	mallory.Import(projectPub)
	w.send(mallory, listA, "Content-Type: multipart/mixed; boundary=\"p3\"\r\n",
		"--p3\nContent-Type: text/plain; charset=utf-8\n\nx-list: "+a+"\nUrgent fix, apply now.\n"+
			"--p3\nContent-Type: text/x-patch\nContent-Disposition: attachment; filename=\"0001-backdoor.patch\"\n\n"+debPatch+"--p3--\n")
	w.waitText(w.cora, 0, "Urgent fix, apply now.")

	// The original report.
	rep := w.cli(0, "incident", "show", a, "--report")
	if !strings.Contains(rep, `The parser crashes on empty input: run parse("").`) || !strings.Contains(rep, "Rita <rita@reporter.example>") ||
		!strings.Contains(rep, "Subject:   parser crash\n") {
		t.Errorf("show --report:\n%s", rep)
	}

	// The thread, in order, with who, when and each signature.
	th := w.cli(0, "incident", "thread", a)
	i1 := strings.Index(th, "#1  ")
	i2 := strings.Index(th, "security@debian.example  [distributed]")
	i3 := strings.Index(th, "cora@example.org  [distributed]")
	if i1 < 0 || i2 < i1 || i3 < i2 || !strings.Contains(th, "Signature: good by "+deb.Fpr) || !strings.Contains(th, "Signature: good by "+w.cora.Fpr) ||
		!strings.Contains(th, "    Thanks, we will be ready.") || !strings.Contains(th, "    Here is the fix, and a second hardening.") ||
		!strings.Contains(th, "Patch:     0001-parser-refuse-empty-input.patch") || !strings.Contains(th, "Signature: unsigned") {
		t.Errorf("thread:\n%s", th)
	}

	// The patches: git am applies them, in order, in a fresh clone.
	code, mbox, errOut := runCVD(t, w.dir, nil, "incident", "patches", a, "--config", w.cfg)
	if code != 0 || strings.Count(mbox, "\nX-Cvd-Signature: good by "+w.cora.Fpr) != 2 || strings.Count(mbox, "\nX-Cvd-Signature: good by "+deb.Fpr) != 1 ||
		strings.Contains(mbox, "backdoor") || !strings.Contains(errOut, "left out 1 patch") {
		t.Errorf("patches (exit %d, %s):\n%s", code, errOut, mbox)
	}
	fresh := newRepo(t)
	gitRun(t, fresh, mbox, "am")
	if got, _ := os.ReadFile(filepath.Join(fresh, "parser.c")); !strings.Contains(string(got), "if (!s || !s[0])") {
		t.Errorf("parser.c after git am:\n%s", got)
	}
	if log := gitRun(t, fresh, "", "log", "--format=%an <%ae>: %s"); !strings.Contains(log, "Fay Fixer <fay@example.org>: parser: refuse empty input") ||
		!strings.Contains(log, "Fay Fixer <fay@example.org>: notes for packagers") ||
		!strings.Contains(log, "<cora@example.org>: null-check") {
		t.Errorf("git log after git am:\n%s", log)
	}

	// The agenda: b's escalation (a day after its report) comes before
	// a's release (Debian acknowledged by its reply: no reminder).
	ag := w.cli(0, "agenda")
	ib, ia := strings.Index(ag, b+"  new"), strings.Index(ag, a+"  prenotified")
	if ib < 0 || ia < ib || !strings.Contains(ag, "escalation") || !strings.Contains(ag, "release at the public date") {
		t.Errorf("agenda:\n%s", ag)
	}

	// The list: title, the actual publication date, the next deadline.
	w.cli(0, "incident", "publish", a, "--now", "--reason", "the fix is public")
	list := w.cli(0, "incident", "list")
	today := time.Now().UTC().Format("2006-01-02")
	rowA := regexp.MustCompile(`(?m)^` + a + `\s+published.*$`).FindString(list)
	rowB := regexp.MustCompile(`(?m)^` + b + `\s+new.*$`).FindString(list)
	if !strings.Contains(rowA, "Parser crash on empty input") || !strings.Contains(rowA, today) || strings.Contains(rowA, date.Format("2006-01-02 15:04")) ||
		!strings.Contains(rowB, "escalation") || !strings.Contains(list, "PUBLISHED") || !strings.Contains(list, "NEXT DEADLINE") {
		t.Errorf("incident list:\n%s", list)
	}
	w.s.stop(t)

	// A week later the team gets the agenda by mail, encrypted.
	w.start("169h")
	mail := w.waitText(w.cora, 0, "Security agenda")
	if !strings.Contains(mail, b) || strings.Contains(mail, a+" ") || !strings.Contains(mail, "1 open incident") {
		t.Errorf("the agenda mail:\n%s", mail)
	}
}
