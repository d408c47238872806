package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// readSealed decrypts a sealed notice as u; the server's clock may run
// ahead of gpg's (CVD_CLOCK_OFFSET), so signature times are not held
// against it.
func readSealed(t *testing.T, u *gpgtest.User, raw []byte) string {
	t.Helper()
	i := strings.Index(string(raw), "-----BEGIN PGP MESSAGE-----")
	j := strings.Index(string(raw), "-----END PGP MESSAGE-----")
	if i < 0 || j < i {
		t.Fatalf("%s: not a sealed message:\n%s", u.Email, raw)
	}
	plain, status, err := u.Try(raw[i:j+len("-----END PGP MESSAGE-----")], "--ignore-time-conflict", "--decrypt")
	if err != nil || !gpgtest.HasStatus(status, "DECRYPTION_OKAY") {
		t.Fatalf("%s cannot decrypt: %v\n%s", u.Email, err, status)
	}
	return plain
}

// mailTo returns the messages delivered to rcpt so far, oldest first.
func mailTo(t *testing.T, dir, rcpt string) []cvdtest.Mail {
	var out []cvdtest.Mail
	for _, m := range cvdtest.Outbox(t, filepath.Join(dir, "outbox")) {
		if m.DeliveredTo == rcpt {
			out = append(out, m)
		}
	}
	return out
}

// TestKeyExpiryWarnings: a downstream whose key expires within 30 days
// is told at the server's start, sealed to that key, and so is the team;
// ten days later (the server's clock moved on) a member whose key has
// come within 30 days is told, and the downstream is not told again.
func TestKeyExpiryWarnings(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	deb := gpgtest.New(t, "Debian Security", "team@security.debian.example", "20d")
	fred := gpgtest.New(t, "Fred Fixer", "fred@example.net", "35d")
	addTeam(t, dir, cfg, cora)
	project, _ := os.ReadFile(filepath.Join(dir, "keys", "project.pub.asc"))
	deb.Import(project)
	fred.Import(project)
	os.WriteFile(filepath.Join(dir, "keys", "debian.asc"), deb.Pub, 0o600)
	cvdtest.AppendConfig(t, cfg, "[[embargo.roster]]\nname = \"Debian\"\nemail = \""+deb.Email+"\"\nkey_file = \"keys/debian.asc\"\n")
	fredKey := filepath.Join(t.TempDir(), "fred.asc")
	os.WriteFile(fredKey, fred.Pub, 0o600)
	runCVD(t, dir, nil, "list", "create", "dev", "--config", cfg)
	if code, out, errOut := runCVD(t, dir, nil, "member", "add", "dev", fred.Email, "--role", "fixer", "--key", fredKey, "--config", cfg); code != 0 {
		t.Fatalf("member add: %s%s", out, errOut)
	}

	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	diag := func() string { return s.logs() + outboxListing(t, dir) }
	warned := readSealed(t, deb, waitOutboxTo(t, dir, deb.Email, diag).Raw)
	debExp := time.Now().UTC().Add(20 * 24 * time.Hour).Format("2006-01-02")
	if !strings.Contains(warned, "Your OpenPGP key expires on") || !strings.Contains(warned, deb.Fpr) || !strings.Contains(warned, debExp) {
		t.Errorf("Debian's warning:\n%s", warned)
	}
	waitFor(t, "the team's notice about Debian's key", func() bool { return len(mailTo(t, dir, cora.Email)) >= 1 }, diag)
	team := readSealed(t, cora, mailTo(t, dir, cora.Email)[0].Raw)
	if !strings.Contains(team, "the key of "+deb.Email+" expires on") || !strings.Contains(team, debExp) || !strings.Contains(team, deb.Fpr) || !strings.Contains(team, "has been told") {
		t.Errorf("Cora's notice:\n%s", team)
	}
	if n := len(mailTo(t, dir, fred.Email)); n != 0 {
		t.Errorf("Fred, whose key has 35 days left, got %d messages", n)
	}
	s.stop(t)

	s = startCVD(t, t.TempDir(), []string{"CVD_CLOCK_OFFSET=240h"}, "--config", cfg)
	warned = readSealed(t, fred, waitOutboxTo(t, dir, fred.Email, diag).Raw)
	if !strings.Contains(warned, fred.Fpr) || !strings.Contains(warned, time.Now().UTC().Add(35*24*time.Hour).Format("2006-01-02")) {
		t.Errorf("Fred's warning:\n%s", warned)
	}
	waitFor(t, "the team's notice about Fred's key", func() bool { return len(mailTo(t, dir, cora.Email)) >= 2 }, diag)
	if got := readSealed(t, cora, mailTo(t, dir, cora.Email)[1].Raw); !strings.Contains(got, "the key of "+fred.Email) {
		t.Errorf("Cora's second notice:\n%s", got)
	}
	s.stop(t)
	if n := len(mailTo(t, dir, deb.Email)); n != 1 {
		t.Errorf("Debian got %d messages, want the one warning", n)
	}
	if n := len(mailTo(t, dir, cora.Email)); n != 2 {
		t.Errorf("Cora got %d messages, want one notice per key", n)
	}
}
