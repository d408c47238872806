package mailserver

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseBounceSamples(t *testing.T) {
	type r struct{ final, orig, action, status string }
	for _, c := range []struct {
		file string
		dsn  bool
		want []r
		diag string // in the first recipient's diagnostic
	}{
		{"lhost-postfix-01.eml", true, []r{{"r@p351355.pool.example.ne.jp", "kijitora@example.org", "failed", "5.1.1"}}, ""},
		{"crlf/lhost-postfix-01.eml", true, []r{{"r@p351355.pool.example.ne.jp", "kijitora@example.org", "failed", "5.1.1"}}, ""},
		{"lhost-postfix-13.eml", true, []r{{"kijitora@example.jp", "kijitora@example.jp", "failed", "5.2.1"}, {"noraneko@example.jp", "noraneko@example.jp", "failed", "5.2.2"}}, ""},
		{"rhost-google-03.eml", true, []r{{"kijitora@google.example.com", "neko@example.co.jp", "failed", "5.7.26"}}, "550-5.7.26"},
		{"lhost-exim-29.eml", true, []r{{"kijitora@example.co.jp", "", "failed", "5.0.0"}}, ""},
		{"lhost-exim-01.eml", false, []r{{"kijitora@example.ed.jp", "", "failed", "5.7.0"}}, "550 5.7.0"},
		{"lhost-exchange2007-01.eml", true, []r{{"mikeneko@example.co.jp", "", "failed", "5.1.1"}}, ""},
		{"lhost-exchange2003-02.eml", false, []r{{"kijitora@example.co.jp", "", "failed", "5.0.0"}, {"mikeneko@example.co.jp", "", "failed", "5.0.0"}}, ""},
		{"lhost-office365-03.eml", true, []r{{"kijitora@example.com", "", "failed", "5.1.0"}}, ""},
		{"lhost-outlook-04.eml", true, []r{{"sabineko@example.co.jp", "", "failed", "5.1.1"}, {"mikeneko@example.co.jp", "", "failed", "5.2.2"}}, ""},
		{"lhost-outlook-06.eml", true, []r{{"kijitora@example.com", "", "delayed", "4.4.7"}}, ""},
		{"rfc3464-51.eml", true, []r{{"kijitora@example.de", "", "failed", "5.0.0"}}, ""},
		{"rfc3464-55.eml", true, []r{{"sotoneko@nora.nyaan.jp", "", "delayed", "4.4.1"}}, ""},
		{"lhost-gmail-01.eml", false, []r{{"userunknown@example.jp", "", "failed", "5.1.1"}}, "550 5.1.1"},
		{"lhost-sendmail-01.eml", true, []r{{"userunknown@bouncehammer.jp", "", "failed", "5.1.1"}}, ""},
		{"lhost-sendmail-29.eml", true, []r{{"this-local-part-does-not-exist-on-the-system@y-mobile.ne.jp", "", "delayed", "4.5.0"}}, ""},
		{"postfix/expired-4.4.1.eml", true, []r{{"team@downstream.example", "team@downstream.example", "failed", "4.4.1"}}, "Connection"},
		{"rfc3464-35.eml", true, []r{
			{"kijitora@nyaan.example.com", "kijitora@nyaan.example.com", "failed", "5.0.0"},
			{"sabatora@cat.example.net", "sabatora@cat.example.net", "delayed", "4.0.0"},
			{"mikeneko@neko.example.or.jp", "mikeneko@neko.example.or.jp", "failed", "5.0.0"},
		}, ""},
	} {
		t.Run(c.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "dsn", c.file))
			if err != nil {
				t.Fatal(err)
			}
			b, err := ParseBounce(raw)
			if err != nil {
				t.Fatal(err)
			}
			if b.DSN != c.dsn {
				t.Errorf("DSN = %v", b.DSN)
			}
			if len(b.Recipients) != len(c.want) {
				t.Fatalf("recipients = %+v", b.Recipients)
			}
			for i, w := range c.want {
				g := b.Recipients[i]
				if !strings.EqualFold(g.FinalRecipient, w.final) || !strings.EqualFold(g.OriginalRecipient, w.orig) || g.Action != w.action || g.Status != w.status {
					t.Errorf("recipient %d = %+v, want %+v", i, g, w)
				}
				if g.Permanent() != (w.action == "failed") {
					t.Errorf("recipient %d: Permanent() = %v", i, g.Permanent())
				}
			}
			if !strings.Contains(b.Recipients[0].Diagnostic, c.diag) {
				t.Errorf("diagnostic %q lacks %q", b.Recipients[0].Diagnostic, c.diag)
			}
		})
	}
}

func TestParseBounceRejectsOrdinaryMail(t *testing.T) {
	raw, err := os.ReadFile("testdata/dsn/not-bounce/is-not-bounce-01.eml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseBounce(raw); !errors.Is(err, ErrNotBounce) {
		t.Errorf("ordinary mail: %v", err)
	}
}

func TestVERP(t *testing.T) {
	rp := ReturnPath("abcdefghijklmnop", "example.org")
	if rp != "security+bounce-abcdefghijklmnop@example.org" {
		t.Fatal(rp)
	}
	for addr, want := range map[string]string{
		rp: "abcdefghijklmnop",
		"<SECURITY+Bounce-ABCDEFGHIJKLMNOP@Example.ORG>": "abcdefghijklmnop",
		"security+bounce-abc@other.example":              "",
		"security+bounce-@example.org":                   "",
		"security+2026-001@example.org":                  "",
		"security@example.org":                           "",
	} {
		if got, ok := VERPToken(addr, "example.org"); got != want || ok != (want != "") {
			t.Errorf("VERPToken(%q) = %q, %v", addr, got, ok)
		}
	}
	// A bounce forwarded to another address still names its token in the
	// quoted header of the returned message.
	raw := []byte("From: MAILER-DAEMON@mx.example.net\r\n\r\n...\r\nReturn-Path: <security+bounce-qrstuvwxyz234567@example.org>\r\n")
	if tok, ok := BounceToken("postmaster@example.org", raw, "example.org"); !ok || tok != "qrstuvwxyz234567" {
		t.Errorf("token from the body = %q %v", tok, ok)
	}
	if tok, ok := BounceToken(rp, nil, "example.org"); !ok || tok != "abcdefghijklmnop" {
		t.Errorf("token from the envelope = %q %v", tok, ok)
	}
}
