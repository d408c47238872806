package mailserver

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	statusRE = regexp.MustCompile(`^[245]\.\d{1,3}\.\d{1,3}$`)
	tokenRE  = regexp.MustCompile(`^[a-z2-7]{16}$`)
)

// FuzzParseBounce feeds arbitrary messages to the bounce parser and the
// VERP token finder (both run on mail from anyone to security+bounce-*):
// they must not panic, a parsed bounce must name its recipients, and a
// permanent failure must carry a 5.x.x status.
func FuzzParseBounce(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "dsn", "*.eml"))
	more, _ := filepath.Glob(filepath.Join("testdata", "dsn", "*", "*.eml"))
	for _, file := range append(files, more...) {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nfailed\r\n" +
			"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; a@b\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--B--\r\n",
		"From MAILER-DAEMON Thu Jan  1 00:00:00 2026\nX-Failed-Recipients: a@b\nSubject: Undelivered\n\n550 5.1.1 <a@b>: user unknown\n",
		"Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822;\r\nStatus: 9.9.9\r\nAction:\r\n",
		"Content-Type: multipart/report; boundary=\"\"\r\n\r\n--\r\nContent-Type: message/delivery-status\r\n\r\n\r\n",
		"To: security+bounce-abcdefghijklmnop@example.org\r\n\r\nReturn-Path: <security+bounce-ABCDEFGHIJKLMNOP@example.org>\r\n",
		"Content-Type: multipart/mixed; boundary=x\r\n\r\n" + strings.Repeat("--x\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n", 20),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := ParseBounce(raw)
		if err == nil {
			if b == nil {
				t.Fatal("no bounce and no error")
			}
			for _, r := range b.Recipients {
				if r.Permanent() && r.Action != "failed" && !strings.HasPrefix(r.Status, "5") {
					t.Fatalf("permanent failure with action %q, status %q", r.Action, r.Status)
				}
				_ = r.Addr()
			}
			if !b.DSN {
				for _, r := range b.Recipients {
					if r.Status != "" && !statusRE.MatchString(r.Status) {
						t.Fatalf("plain bounce with status %q", r.Status)
					}
				}
			}
		}
		for _, rcpt := range []string{"security+bounce-abcdefghijklmnop@example.org", "security@example.org"} {
			if tok, ok := BounceToken(rcpt, raw, "example.org"); ok && !tokenRE.MatchString(tok) {
				t.Fatalf("token %q", tok)
			}
		}
	})
}
