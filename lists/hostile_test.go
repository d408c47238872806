package lists_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/cvd-project/cvd/internal/gpgtest"
	"github.com/cvd-project/cvd/store"
)

// Header injection through the fields a poster controls: the display
// name, the Subject (RFC 2047 words that decode to line breaks) and a
// References header. Copies must carry no header the poster made up, and
// an attachment name with a path goes nowhere but inside the encryption.
func TestHostilePostHeaders(t *testing.T) {
	w := newWorld(t)
	w.svc.CreateList(t.Context(), "2026-050", store.ListIncident, "")
	coord := w.person("Cora", "cora@example.org", "never")
	mal := w.person("Mal", "mal@example.net", "never")
	w.join("2026-050", coord, "coordinator")
	w.join("2026-050", mal, "fixer")

	inner := "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--b\r\nContent-Type: application/octet-stream; name=\"../../../etc/passwd\"\r\nContent-Disposition: attachment; filename=\"../../../etc/passwd\"\r\n\r\nroot:x:0:0\r\n--b--\r\n"
	raw := gpgtest.PGPMIME("From: =?utf-8?q?Mal=0D=0ABcc=3A_victim=40evil=2Eexample?= <mal@example.net>\r\n"+
		"To: security+2026-050@example.org\r\n"+
		"Subject: =?utf-8?q?hello=0D=0ABcc=3A_victim=40evil=2Eexample=0D=0A=0D=0Abody?=\r\n"+
		"References: <a@x>\r\n\tBcc: victim@evil.example\r\nMessage-ID: <evil1@example.net>\r\n",
		mal.EncryptSign([]byte(inner), w.key.Fingerprint()))
	w.send(mal.Email, "security+2026-050@example.org", raw)

	q := w.queue()
	if len(q) != 1 || q[0].rcpt != coord.Email {
		t.Fatalf("queued %+v", q)
	}
	head := headerOf(q[0].raw)
	if regexp.MustCompile(`(?mi)^bcc:`).MatchString(head) {
		t.Errorf("injected header in the copy:\n%s", head)
	}
	plain, status, err := coord.Decrypt(q[0].raw)
	if err != nil || !gpgtest.HasStatus(status, "GOODSIG") {
		t.Fatalf("coordinator: %v", err)
	}
	innerHead, _, _ := strings.Cut(plain, "\n\n")
	if regexp.MustCompile(`(?mi)^bcc:`).MatchString(strings.ReplaceAll(innerHead, "\r", "")) {
		t.Errorf("injected header inside the encryption:\n%s", innerHead)
	}
	if !strings.Contains(plain, `filename="../../../etc/passwd"`) {
		t.Errorf("attachment not passed on as content:\n%s", plain)
	}
}
