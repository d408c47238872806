package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/gpgtest"
)

// waitMail waits until rcpt has n messages in the outbox.
func waitMail(t *testing.T, dir, rcpt string, n int) [][]byte {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := outboxMail(t, dir)[rcpt]
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d messages in the outbox after 30s, want %d\n%s", rcpt, len(got), n, outboxListing(t, dir))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestIncidentCLI is a security team running an incident with the CLI
// while cvd serves: a report to security@ opens it and is acknowledged,
// the team confirms it, the date rules are enforced, and the configured
// downstream is pre-notified, encrypted to its key.
func TestIncidentCLI(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	projectPub, _ := os.ReadFile(filepath.Join(dir, "keys/project.pub.asc"))
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	deb := gpgtest.New(t, "Debian Security", "security@debian.example", "never")
	for _, u := range []*gpgtest.User{cora, deb} {
		u.Import(projectPub)
	}
	os.WriteFile(filepath.Join(dir, "keys/cora.asc"), cora.Pub, 0o600)
	os.WriteFile(filepath.Join(dir, "keys/debian.asc"), deb.Pub, 0o600)
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\n[[embargo.team]]\nname = \"Cora\"\nemail = \"cora@example.org\"\nkey_file = \"keys/cora.asc\"\n" +
		"\n[[embargo.roster]]\nname = \"Debian\"\nemail = \"security@debian.example\"\nkey_file = \"keys/debian.asc\"\n")
	f.Close()

	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	mail := filepath.Join(t.TempDir(), "report.eml")
	os.WriteFile(mail, []byte("From: Rita <rita@reporter.example>\r\nTo: security@example.org\r\nSubject: crash\r\nMessage-ID: <r1@reporter.example>\r\n\r\nThe parser crashes.\r\n"), 0o600)
	if out, err := swaks(t, "--server", s.addr, "--from", "rita@reporter.example", "--to", "security@example.org", "--data", "@"+mail); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	ack := waitMail(t, dir, "rita@reporter.example", 1)[0]
	id := regexp.MustCompile(`incident (\d{4}-\d{3})`).FindStringSubmatch(string(ack))
	if id == nil || !strings.Contains(string(ack), "Auto-Submitted: auto-replied") {
		t.Fatalf("acknowledgement:\n%s", ack)
	}
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		code, out, errOut := runCVD(t, dir, nil, append(append([]string{"incident"}, args...), "--config", cfg)...)
		if code != wantCode {
			t.Fatalf("cvd incident %v: exit %d, want %d\n%s%s", args, code, wantCode, out, errOut)
		}
		return out + errOut
	}
	if out := cli(0, "list"); !strings.Contains(out, id[1]) || !strings.Contains(out, "new") {
		t.Errorf("list:\n%s", out)
	}
	cli(0, "confirm", id[1])
	cli(0, "set", id[1], "title", "Parser crash on empty input")
	cli(0, "cvss", id[1], "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H")
	cli(0, "set", id[1], "description", "An empty input file crashes the parser.")
	cli(0, "versions", id[1], "libexample", "--introduced", "1.0", "--fixed", "1.2.3")
	if out := cli(1, "cvss", id[1], "CVSS:3.1/AV:X"); !strings.Contains(out, "CVSS") {
		t.Errorf("bad vector: %s", out)
	}
	early := time.Now().UTC().Add(24 * time.Hour).Format("2006-01-02T15:04Z")
	if out := cli(1, "embargo", id[1], early); !strings.Contains(out, "less than 48 hours") || !strings.Contains(out, "earliest compliant date") {
		t.Errorf("early date: %s", out)
	}
	if out := cli(0, "embargo", id[1], "--propose"); !strings.Contains(out, "10:00 UTC") {
		t.Errorf("propose: %s", out)
	}
	date := time.Now().UTC().Add(72 * time.Hour).Truncate(time.Hour)
	cli(0, "embargo", id[1], date.Format("2006-01-02T15:04Z"))
	if out := cli(0, "notify", id[1]); !strings.Contains(out, "security@debian.example") {
		t.Errorf("notify: %s", out)
	}
	pre := waitMail(t, dir, deb.Email, 1)[0]
	plain, status, err := deb.Decrypt(pre)
	if err != nil || !gpgtest.HasStatus(status, "GOODSIG") || !strings.Contains(plain, date.Format("2006-01-02 15:04 UTC")) ||
		!strings.Contains(plain, "[vs]") {
		t.Errorf("pre-notification: %v\n%s", err, plain)
	}
	if out := cli(1, "publish", id[1]); !strings.Contains(out, "embargoed until") {
		t.Errorf("early publish: %s", out)
	}
	if out := cli(0, "show", id[1]); !strings.Contains(out, "prenotified") || !strings.Contains(out, "Debian <security@debian.example>") {
		t.Errorf("show:\n%s", out)
	}
	if out := cli(0, "report", id[1]); !strings.Contains(out, "Downstream acknowledgements") {
		t.Errorf("report:\n%s", out)
	}
	if out := cli(0, "export", id[1], "--format", "text"); !strings.Contains(out, "EMBARGOED") {
		t.Errorf("export of an embargoed incident:\n%s", out)
	}
}
