package mailserver

import (
	"net/mail"
	"os"
	"strings"
	"testing"
)

func header(t *testing.T, s string) mail.Header {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(s + "\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	return m.Header
}

func TestShouldAutoReply(t *testing.T) {
	const base = "From: reporter@example.net\r\nSubject: bug"
	for _, c := range []struct {
		hdr, from string
		want      bool
	}{
		{base, "reporter@example.net", true},
		{base + "\r\nAuto-Submitted: no", "reporter@example.net", true},
		{base + "\r\nAuto-Submitted: No (a person)", "reporter@example.net", true},
		{base + "\r\nAuto-Submitted: auto-replied", "reporter@example.net", false},
		{base + "\r\nAuto-Submitted: auto-generated", "reporter@example.net", false},
		{base + "\r\nAuto-Submitted: auto-notified; owner-email=x@example.net", "reporter@example.net", false},
		{base + "\r\nList-Id: <dev.lists.example.net>", "reporter@example.net", false},
		{base + "\r\nList-Unsubscribe: <mailto:x@example.net>", "reporter@example.net", false},
		{base + "\r\nPrecedence: bulk", "reporter@example.net", false},
		{base + "\r\nPrecedence: list", "reporter@example.net", false},
		{base + "\r\nPrecedence: junk", "reporter@example.net", false},
		{base + "\r\nPrecedence: first-class", "reporter@example.net", true},
		{base + "\r\nX-Auto-Response-Suppress: OOF, AutoReply", "reporter@example.net", false},
		{base + "\r\nX-Auto-Response-Suppress: RN, NRN", "reporter@example.net", true},
		{base, "", false},
		{base, "<>", false},
		{base, "MAILER-DAEMON@mx.example.net", false},
		{base, "postmaster@example.net", false},
	} {
		if got := ShouldAutoReply(header(t, c.hdr), c.from); got != c.want {
			t.Errorf("%q from %q: %v, want %v", c.hdr, c.from, got, c.want)
		}
	}
}

func TestShouldAutoReplyBounces(t *testing.T) {
	// Every bounce sample marks itself in one of the ways checked: a
	// bounce never gets an answer, whatever its envelope sender.
	for _, f := range []string{"lhost-exim-01.eml", "lhost-postfix-01.eml", "lhost-gmail-01.eml", "rfc3464-51.eml"} {
		raw, err := os.ReadFile("testdata/dsn/" + f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := mail.ReadMessage(strings.NewReader(string(skipMboxFrom(raw))))
		if err != nil {
			t.Fatal(err)
		}
		from, _ := mail.ParseAddress(m.Header.Get("From"))
		addr := ""
		if from != nil {
			addr = from.Address
		}
		if ShouldAutoReply(m.Header, addr) {
			t.Errorf("%s: would auto-reply to a bounce from %q", f, addr)
		}
	}
}
