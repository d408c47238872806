package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cvd-project/cvd/templates"
)

func TestTemplatesExportAndCheck(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "notices")
	code, out, errOut := runCVD(t, t.TempDir(), nil, "templates", "export", dir)
	if code != 0 {
		t.Fatalf("export: %d %s%s", code, out, errOut)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	if len(files) != len(templates.Names()) {
		t.Errorf("export wrote %d files, want %d", len(files), len(templates.Names()))
	}
	if code, _, errOut := runCVD(t, t.TempDir(), nil, "templates", "export", dir); code != 1 || !strings.Contains(errOut, "--force") {
		t.Errorf("export over existing files: %d %s", code, errOut)
	}
	if code, _, _ := runCVD(t, t.TempDir(), nil, "templates", "export", dir, "--force"); code != 0 {
		t.Errorf("export --force: %d", code)
	}
	if code, out, errOut := runCVD(t, t.TempDir(), nil, "templates", "check", dir); code != 0 || !strings.Contains(out, "every notice template renders") {
		t.Errorf("check of the defaults: %d %s%s", code, out, errOut)
	}

	os.WriteFile(filepath.Join(dir, "ack.txt"), []byte("Subject: [{{.ID}}] thanks\n\nDear reporter,\n\nyour report {{.Nmae}} arrived.\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "acknowledgement.txt"), []byte("Subject: x\n\ny\n"), 0o644)
	code, out, errOut = runCVD(t, t.TempDir(), nil, "templates", "check", dir)
	if code != 1 || !strings.Contains(out, filepath.Join(dir, "ack.txt")+":5: ") || !strings.Contains(out, `"Nmae"`) ||
		!strings.Contains(out, filepath.Join(dir, "acknowledgement.txt")+": matches no notice") || !strings.Contains(errOut, "2 problem(s)") {
		t.Errorf("check of bad files: %d\n%s%s", code, out, errOut)
	}
	for _, args := range [][]string{{"templates"}, {"templates", "check"}, {"templates", "frob", dir}} {
		if code, _, errOut := runCVD(t, t.TempDir(), nil, args...); code != 2 || !strings.Contains(errOut, "Usage:") {
			t.Errorf("cvd %v: %d %s", args, code, errOut)
		}
	}
}

// TestTemplatesOverrideInServe: templates_dir replaces the
// acknowledgement; a hostile override that passes the check but breaks
// its subject line with the real data injects no header; a broken folder
// stops the server from starting, naming the file.
func TestTemplatesOverrideInServe(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	notices := filepath.Join(dir, "notices")
	os.MkdirAll(notices, 0o755)
	// The sample incident has a reporter key; this reporter has none.
	os.WriteFile(filepath.Join(notices, "ack.txt"), []byte("Subject: [{{.ID}}] Received by the Example team{{if not .KeyKnown}}{{\"\\r\\n\"}}Bcc: victim@evil.example{{end}}\n\n"+
		"Hello from the customised notice about incident {{.ID}}; write to {{.ListAddress}}.\n"), 0o644)
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), "# templates_dir = \"templates\"", "templates_dir = \"notices\"", 1)), 0o600)

	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	id := report(t, s, dir, "rita@reporter.example", "crash report", 1)
	ack := string(waitMail(t, dir, "rita@reporter.example", 1)[0])
	head, body, _ := strings.Cut(strings.ReplaceAll(ack, "\r\n", "\n"), "\n\n")
	if !strings.Contains(body, "Hello from the customised notice about incident "+id) {
		t.Errorf("the override was not used:\n%s", ack)
	}
	if regexp.MustCompile(`(?mi)^bcc:`).MatchString(head) || !strings.Contains(head, "Subject: ["+id+"] Received by the Example team Bcc: victim@evil.example\n") {
		t.Errorf("header injection through the override:\n%s", head)
	}
	// Rows are queued with the acknowledgement: the queue shows any copy
	// for the injected address, delivered yet or not.
	if _, out, _ := runCVD(t, dir, nil, "queue", "list", "--all", "--config", cfg); strings.Contains(out, "victim@evil.example") || len(outboxMail(t, dir)["victim@evil.example"]) != 0 {
		t.Errorf("mail went to the injected address:\n%s", out)
	}
	// Notices rendered by the CLI use the override folder too.
	if code, out, errOut := runCVD(t, dir, nil, "incident", "show", id, "--config", cfg); code != 0 {
		t.Errorf("incident show with templates_dir: %d %s%s", code, out, errOut)
	}
	s.stop(t)

	os.WriteFile(filepath.Join(notices, "triage.txt"), []byte("Subject: {{.ID}\n\nbody\n"), 0o644)
	code, _, errOut := runCVD(t, dir, nil, "serve", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "templates_dir") || !strings.Contains(errOut, filepath.Join(notices, "triage.txt")+":1:") {
		t.Errorf("serve with a broken template: %d %s", code, errOut)
	}
}
