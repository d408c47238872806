package templates

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
)

// exportAll writes every embedded notice to a new folder.
func exportAll(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range Names() {
		b, err := Embedded(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n+".txt"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestExportedDefaultsCheckClean(t *testing.T) {
	dir := exportAll(t)
	problems, err := Check(dir)
	if err != nil || len(problems) != 0 {
		t.Fatalf("the embedded notices do not check clean: %v %v", err, problems)
	}
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Overrides()) != len(Names()) {
		t.Errorf("%d overrides, want %d", len(s.Overrides()), len(Names()))
	}
	for _, n := range Names() {
		want, err := Default().Render(n, Sample())
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Render(n, Sample())
		if err != nil || *got != *want {
			t.Errorf("%s: exported copy renders %+v, %v; want %+v", n, got, err, want)
		}
	}
	if _, err := Embedded("nonesuch"); err == nil {
		t.Error("Embedded of an unknown notice")
	}
}

func TestOverrideReplacesNotice(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "receipt.txt"), []byte("Subject: Got it ({{.Address}})\n\nWe have your message, thanks.\n"), 0o644)
	os.WriteFile(filepath.Join(dir, ".receipt.txt.swp"), []byte("editor junk"), 0o644)
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]any{"Address": "security+2026-001@example.org", "Intake": "security@example.org"}
	r, err := s.Render("receipt", data)
	if err != nil || r.Subject != "Got it (security+2026-001@example.org)" || r.Body != "We have your message, thanks.\n" {
		t.Errorf("override: %+v %v", r, err)
	}
	// Notices without a file stay embedded.
	if r, err := s.Render("missed", map[string]any{"List": "x", "ListAddress": "y", "Reason": "z", "Email": "e"}); err != nil || !strings.Contains(r.Body, "z") {
		t.Errorf("embedded notice through the set: %+v %v", r, err)
	}

	// The package-level Render follows Use.
	before, _ := Render("receipt", data)
	Use(s)
	after, _ := Render("receipt", data)
	Use(nil)
	restored, _ := Render("receipt", data)
	if after.Subject != r.Subject || before.Subject == r.Subject || restored.Subject != before.Subject {
		t.Errorf("Use: before %q, with the set %q, after Use(nil) %q", before.Subject, after.Subject, restored.Subject)
	}
}

func TestOverrideFailingAtRuntimeFallsBack(t *testing.T) {
	dir := t.TempDir()
	// .Title is in the sample incident but not in a receipt's data.
	os.WriteFile(filepath.Join(dir, "receipt.txt"), []byte("Subject: About {{.Title}}\n\nReceived.\n"), 0o644)
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	s.Log = slog.New(slog.NewTextHandler(&logged, nil))
	r, err := s.Render("receipt", map[string]any{"Address": "a@example.org", "Intake": "security@example.org"})
	if err != nil || strings.Contains(r.Subject, "About") || r.Subject == "" {
		t.Errorf("fallback: %+v %v", r, err)
	}
	if !strings.Contains(logged.String(), "receipt.txt") || !strings.Contains(logged.String(), "Title") {
		t.Errorf("the failure is not logged: %q", logged.String())
	}
}

func TestCheckReportsFileAndLine(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"ack.txt":          "Subject: [{{.ID}}] received\n\nThanks.\n{{if .KeyKnown}}\nencrypted\n{{end\n",
		"receipt.txt":      "Subject: ok\n\nline 3\nline 4 {{.Nope}}\n",
		"thanks.txt":       "Dear reporter,\n\nthanks.\n",
		"acknowledge.txt":  "Subject: x\n\ny\n",
		"lifted.txt":       "Subject: lifted{{\"\\n\"}}Bcc: victim@example.com\n\nbody\n",
		"undelivered.txt":  "Subject: {{.List}}\n\n{{.Reply | nosuchfunc}}\n",
		"notes":            "a stray file",
		"subscribed.txt":   "Subject: ok\r\n\r\nbody\r\n",
		"unsubscribed.txt": "Subject: \n\nbody\n",
	}
	for n, text := range files {
		os.WriteFile(filepath.Join(dir, n), []byte(text), 0o644)
	}
	problems, err := Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Problem{}
	for _, p := range problems {
		got[filepath.Base(p.File)] = p
		if !strings.HasPrefix(p.String(), filepath.Join(dir, filepath.Base(p.File))) {
			t.Errorf("problem %q does not start with the file", p)
		}
	}
	for name, want := range map[string]struct {
		line int
		msg  string
	}{
		"ack.txt":          {7, "unclosed action started at ack.txt:6"},
		"receipt.txt":      {4, `"Nope"`},
		"thanks.txt":       {1, "Subject: "},
		"acknowledge.txt":  {0, "matches no notice"},
		"lifted.txt":       {1, "no other header"},
		"undelivered.txt":  {3, "nosuchfunc"},
		"notes":            {0, "matches no notice"},
		"subscribed.txt":   {0, "LF line endings"},
		"unsubscribed.txt": {1, "subject is empty"},
	} {
		p, ok := got[name]
		if !ok {
			t.Errorf("%s: no problem reported", name)
			continue
		}
		if p.Line != want.line || !strings.Contains(p.Msg, want.msg) {
			t.Errorf("%s: %s; want line %d and %q", name, p, want.line, want.msg)
		}
	}
	if len(problems) != len(files) {
		t.Errorf("%d problems for %d bad files: %v", len(problems), len(files), problems)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "ack.txt:7") {
		t.Errorf("Load of a bad folder: %v", err)
	}
	if _, err := Check(filepath.Join(dir, "missing")); err == nil {
		t.Error("Check of a missing folder")
	}
}

// TestHostileOverrideCannotInjectHeaders: a template that passes the
// check with the sample incident but breaks its subject line with other
// data still renders one header line.
func TestHostileOverrideCannotInjectHeaders(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ack.txt"), []byte("Subject: [{{.ID}}] {{.Project}}{{if not .KeyKnown}}{{\"\\r\\n\"}}Bcc: victim@example.com{{end}}\n\nThanks.\n"), 0o644)
	s, err := Load(dir)
	if err != nil {
		t.Fatalf("the override passes the check with the sample: %v", err)
	}
	data := Sample()
	data["KeyKnown"] = false
	data["Project"] = "lib\nX-Evil: 1"
	r, err := s.Render("ack", data)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(r.Subject, "\r\n") || r.Subject != "[2026-001] lib X-Evil: 1 Bcc: victim@example.com" {
		t.Errorf("subject %q", r.Subject)
	}

	// Even a set built without the check keeps subjects to one line.
	tmpl, err := parse("ack", "Subject: hi\nBcc: victim@example.com\nX-Evil: 1\n\nbody\n")
	if err != nil {
		t.Fatal(err)
	}
	unchecked := &Set{tmpl: map[string]*template.Template{"ack": tmpl}, files: map[string]string{"ack": "ack.txt"}}
	r, err = unchecked.Render("ack", nil)
	if err != nil || r.Subject != "hi Bcc: victim@example.com X-Evil: 1" || r.Body != "body\n" {
		t.Errorf("unchecked set: %+v %v", r, err)
	}
}
