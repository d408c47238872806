package main

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

var imapAddrRE = regexp.MustCompile(`msg="cvd ready".* imap=(\S+)`)

// TestAnnouncementSubjectOutside: the announcement's Subject is on the
// outer header of every subscriber's copy (what NeoMutt's index shows)
// and in the ENVELOPE of the subscriber's IMAP Announce mailbox, not only
// inside the signed part.
func TestAnnouncementSubjectOutside(t *testing.T) {
	w := newAnnWorld(t)
	sue := gpgtest.New(t, "Sue Subscriber", "sue@users.example", "never")
	projectPub, _ := os.ReadFile(filepath.Join(w.dir, "keys/project.pub.asc"))
	sue.Import(projectPub)
	keyFile := filepath.Join(t.TempDir(), "sue.asc")
	os.WriteFile(keyFile, sue.Pub, 0o600)
	w.cli(0, "member", "add", "announce", sue.Email, "--role", "subscriber", "--key", keyFile, "--name", sue.Name)

	const subject = "[SECURITY] libexample 1.2.4 fixes a heap overflow"
	w.send(w.cora.Email, "announce@example.org", inlineSigned(w.cora, "From: Cora Coordinator <cora@example.org>\r\nTo: announce@example.org\r\n"+
		"Subject: "+subject+"\r\nMessage-ID: <ann-subj@example.org>\r\n", "x-list: announce\n\nUpgrade to 1.2.4.\n"))
	for _, m := range waitMail(t, w.dir, samAddr, 1) {
		if got := cvdtest.Header(m, "Subject"); got != subject {
			t.Errorf("outer Subject of Sam's copy: %q, want %q", got, subject)
		}
	}

	w.cli(0, "member", "password", sue.Email)
	w.drained()
	var password string
	for _, m := range outboxMail(t, w.dir)[sue.Email] {
		if !strings.Contains(string(m), "BEGIN PGP MESSAGE") {
			continue
		}
		plain, _, err := sue.Decrypt(m)
		if err != nil {
			t.Fatalf("Sue cannot decrypt: %v", err)
		}
		if p := passwordRE.FindStringSubmatch(plain); p != nil {
			password = p[1]
		}
	}
	if password == "" {
		t.Fatalf("no IMAP password for Sue in the outbox")
	}

	addr := imapAddrRE.FindStringSubmatch(w.s.logs())
	if addr == nil {
		t.Fatalf("no IMAP address in the ready line")
	}
	c, err := imapclient.DialStartTLS(addr[1], &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(sue.Email, password).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	if _, err := c.Select("Announce", nil).Wait(); err != nil {
		t.Fatalf("select Announce: %v", err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].Envelope == nil {
		t.Fatalf("fetch envelope: %v (%d messages)", err, len(msgs))
	}
	if got := msgs[0].Envelope.Subject; got != subject {
		t.Errorf("ENVELOPE subject in Sue's Announce mailbox: %q, want %q", got, subject)
	}
	c.Logout().Wait()
	w.s.stop(t)
}
