package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/smtp"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// rcptReply is the reply to RCPT TO:<addr> in a fresh transaction.
func rcptReply(t *testing.T, addr, rcpt string) string {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("someone@sender.example"); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt(rcpt)
	var te *textproto.Error
	switch {
	case err == nil:
		return "250"
	case errors.As(err, &te):
		return strings.ReplaceAll(te.Error(), `"`, "")
	}
	t.Fatalf("RCPT %s: %v", rcpt, err)
	return ""
}

// TestRoleAndUnknownAddresses: postmaster@ and abuse@ are accepted and
// reach the team sealed, with the message attached as received; RCPT to
// an incident list that does not exist, to a bounce token never issued
// or to an announce+TAG that means nothing gets 550 5.1.1 at once, while
// the real list, the real token and the announce requests are accepted.
func TestRoleAndUnknownAddresses(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	projectPub, _ := os.ReadFile(filepath.Join(dir, "keys/project.pub.asc"))
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	cora.Import(projectPub)
	os.WriteFile(filepath.Join(dir, "keys/cora.asc"), cora.Pub, 0o600)
	cvdtest.AppendConfig(t, cfg, "\n[[embargo.team]]\nname = \"Cora\"\nemail = \"cora@example.org\"\nkey_file = \"keys/cora.asc\"\n")
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	defer s.stop(t)

	send := func(from, to, raw string) {
		t.Helper()
		f := filepath.Join(t.TempDir(), "m.eml")
		os.WriteFile(f, []byte(raw), 0o600)
		if out, err := swaks(t, "--server", s.addr, "--from", from, "--to", to, "--data", "@"+f); err != nil {
			t.Fatalf("swaks to %s: %v\n%s", to, err, out)
		}
	}
	reporter := "rita@reporter.example"
	send(reporter, "security@example.org", "From: Rita <"+reporter+">\r\nTo: security@example.org\r\nSubject: crash\r\n\r\nThe parser crashes.\r\n")
	outbox := filepath.Join(dir, "outbox")
	ack := waitOutboxTo(t, dir, reporter, s.Logs)
	list := regexp.MustCompile(`security\+(\d{4}-\d+)@example\.org`).FindStringSubmatch(string(ack.Raw))
	if list == nil || ack.Token == "" {
		t.Fatalf("acknowledgement names no incident list or has no token:\n%s", ack.Raw)
	}

	for rcpt, want := range map[string]string{
		"security@example.org":                          "250",
		"security+" + list[1] + "@example.org":          "250",
		"security+bounce-" + ack.Token + "@example.org": "250",
		"postmaster@example.org":                        "250",
		"PostMaster@example.org":                        "250",
		"abuse@example.org":                             "250",
		"announce@example.org":                          "250",
		"announce+subscribe@example.org":                "250",
		"announce+unsubscribe@example.org":              "250",
		"security+2099-999@example.org":                 "550 5.1.1",
		"security+bounce-neverissued0@example.org":      "550 5.1.1",
		"security+announce@example.org":                 "550 5.1.1",
		"announce+bogus@example.org":                    "550 5.1.1",
		"nobody@example.org":                            "550 5.1.1",
	} {
		if got := rcptReply(t, s.addr, rcpt); !strings.HasPrefix(got, want) {
			t.Errorf("RCPT TO:<%s>: %q, want %s", rcpt, got, want)
		}
	}

	for _, role := range []string{"postmaster", "abuse"} {
		marker := "MARKER-" + role + "-b1f2"
		send("mailer-daemon@far.example", role+"@example.org", "From: Mail Delivery <mailer-daemon@far.example>\r\nTo: "+role+"@example.org\r\n"+
			"Subject: report for "+role+"\r\n\r\n"+marker+"\r\n")
		var got []byte
		deadline := time.Now().Add(30 * time.Second)
		for got == nil && time.Now().Before(deadline) {
			for _, m := range cvdtest.Outbox(t, outbox) {
				if m.DeliveredTo != cora.Email || !bytes.Contains(m.Raw, []byte("BEGIN PGP MESSAGE")) {
					continue
				}
				plain, _, err := cora.Decrypt(m.Raw)
				if err != nil {
					t.Fatalf("Cora cannot decrypt: %v", err)
				}
				if strings.Contains(plain, "Mail to "+role+"@example.org") {
					got = []byte(plain)
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		if got == nil {
			t.Fatalf("mail to %s@ did not reach the team sealed\n%s", role, s.Logs())
		}
		b64 := regexp.MustCompile(`(?s)filename="spool-\d+\.eml"\r?\nContent-Transfer-Encoding: base64\r?\n\r?\n([A-Za-z0-9+/=\r\n]+)`).FindSubmatch(got)
		if b64 == nil {
			t.Fatalf("no attachment in the forward:\n%s", got)
		}
		raw, _ := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(b64[1])))
		if !bytes.Contains(raw, []byte(marker)) {
			t.Errorf("the attachment is not the message as received:\n%s", raw)
		}
	}
	for _, m := range cvdtest.Outbox(t, outbox) {
		if m.DeliveredTo == "mailer-daemon@far.example" {
			t.Errorf("cvd answered the sender of postmaster mail:\n%s", m.Raw)
		}
	}
}
