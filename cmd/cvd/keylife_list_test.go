package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/gpgtest"
)

// TestListKeyExpiryWarning: a key trusted on one list only (it came with
// the report) is watched like a pinned one: when it comes within 30 days
// of its expiry (the server's clock moved on), the reporter is told,
// sealed to that key, and the team too, once.
func TestListKeyExpiryWarning(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	rita := gpgtest.New(t, "Rita Reporter", "rita@reporter.example", "40d")
	addTeam(t, dir, cfg, cora)
	project, _ := os.ReadFile(filepath.Join(dir, "keys", "project.pub.asc"))
	rita.Import(project)

	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	diag := func() string { return s.logs() + outboxListing(t, dir) }
	if err := smtpSend(s.addr, rita.Email, withKey(rita.Email, "r1@reporter.example", "The parser crashes.", rita.Pub)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the acknowledgement and the team's copy", func() bool {
		return len(mailTo(t, dir, rita.Email)) == 1 && len(mailTo(t, dir, cora.Email)) == 1
	}, diag)
	s.stop(t)

	// The team's notices about Rita's key (others, such as reminders,
	// come too as the clock moves on).
	keyNotices := func() []string {
		var out []string
		for _, m := range mailTo(t, dir, cora.Email)[1:] {
			if p := readSealed(t, cora, m.Raw); strings.Contains(p, "the key of "+rita.Email) {
				out = append(out, p)
			}
		}
		return out
	}
	for range 2 {
		s = startCVD(t, t.TempDir(), []string{"CVD_CLOCK_OFFSET=240h"}, "--config", cfg)
		waitFor(t, "the warning to Rita", func() bool { return len(mailTo(t, dir, rita.Email)) >= 2 }, diag)
		waitFor(t, "the team's notice", func() bool { return len(keyNotices()) >= 1 }, diag)
		s.stop(t)
	}
	warned := readSealed(t, rita, mailTo(t, dir, rita.Email)[1].Raw)
	exp := time.Now().UTC().Add(40 * 24 * time.Hour).Format("2006-01-02")
	if !strings.Contains(warned, "Your OpenPGP key expires on") || !strings.Contains(warned, rita.Fpr) || !strings.Contains(warned, exp) {
		t.Errorf("Rita's warning:\n%s", warned)
	}
	team := keyNotices()
	if len(team) != 1 || !strings.Contains(team[0], "the key of "+rita.Email+" expires on") || !strings.Contains(team[0], rita.Fpr) || !strings.Contains(team[0], "has been told") {
		t.Errorf("Cora's notices about Rita's key, want one:\n%s", strings.Join(team, "\n----\n"))
	}
	if r := len(mailTo(t, dir, rita.Email)); r != 2 {
		t.Errorf("Rita got %d messages, want the acknowledgement and one warning", r)
	}
}
