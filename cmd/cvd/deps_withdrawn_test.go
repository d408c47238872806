package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// TestDependencyAdvisoryWithdrawn: an upstream advisory that opened a
// dependency incident is withdrawn (its OSV record in the folder source
// gains "withdrawn"): the next check says so, the coordinator gets one
// sealed notice, 'cvd incident show' shows it, and a later check does not
// tell again.
func TestDependencyAdvisoryWithdrawn(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	addTeam(t, dir, cfg, cora)
	ents, err := os.ReadDir(filepath.Join(depsTestdata, "advisories"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		copyFile(t, filepath.Join(depsTestdata, "advisories", e.Name()), filepath.Join(dir, "osv", e.Name()))
	}
	cvdtest.SetConfig(t, cfg, "osv_data", `"osv"`)
	cvdtest.SetConfig(t, cfg, "check_every", `"0s"`)
	cvdtest.AppendConfig(t, cfg, "[[components]]\nlockfile = \"app/Gemfile.lock\"\n")
	copyFile(t, filepath.Join(depsTestdata, "lockfiles", "rubygems-doc2pdf-server", "Gemfile.lock"), filepath.Join(dir, "app", "Gemfile.lock"))
	out := mustCLI(t, dir, cfg, "deps", "check")
	rack := incidentFor(t, out, "GHSA-54rr-7fvw-6x8f")
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	waitMail(t, dir, cora.Email, 3)

	const adv = "GHSA-54rr-7fvw-6x8f"
	copyFile(t, filepath.Join(depsTestdata, "advisories", adv+".json"), filepath.Join(dir, "osv", adv+".json"),
		`"modified": "2024-02-29T02:30:57Z",`, `"modified": "2026-11-20T08:00:00Z", "withdrawn": "2026-11-20T08:00:00Z",`)
	out = mustCLI(t, dir, cfg, "deps", "check")
	if !strings.Contains(out, adv+" was withdrawn upstream: incident "+rack) || !strings.Contains(out, "2 advisories matched") {
		t.Errorf("deps check after the withdrawal:\n%s", out)
	}
	var notice string
	waitFor(t, "the coordinator's notice of the withdrawal", func() bool {
		for _, raw := range outboxMail(t, dir)[cora.Email] {
			if text, _, err := cora.Decrypt(raw); err == nil && strings.Contains(text, "was withdrawn") {
				notice = text
				return true
			}
		}
		return false
	}, s.logs)
	if !strings.Contains(notice, "["+rack+"] Dependency advisory "+adv+" was withdrawn") || !strings.Contains(notice, "2026-11-20 08:00 UTC") {
		t.Errorf("the notice:\n%s", notice)
	}
	if show := mustCLI(t, dir, cfg, "incident", "show", rack); !strings.Contains(show, "Withdrawn:     upstream, on 2026-11-20 08:00 UTC") ||
		!strings.Contains(show, "advisory "+adv+" was withdrawn upstream") {
		t.Errorf("incident show:\n%s", show)
	}
	n := len(outboxMail(t, dir)[cora.Email])
	if out := mustCLI(t, dir, cfg, "deps", "check"); strings.Contains(out, "withdrawn") {
		t.Errorf("a second check tells again:\n%s", out)
	}
	s.stop(t)
	if got := len(outboxMail(t, dir)[cora.Email]); got != n {
		t.Errorf("the coordinator got %d more messages after the second check", got-n)
	}
}
