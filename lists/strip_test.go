package lists

import (
	"strings"
	"testing"
)

func TestStripKeywords(t *testing.T) {
	plain := "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nx-list: 2026-001\r\nx-cve: CVE-2026-1234\r\n\r\nThe fix is ready=2E\r\n"
	kws, out := stripKeywords([]byte(plain), 0)
	if len(kws) != 2 || kws[1] != (Keyword{"cve", "CVE-2026-1234"}) {
		t.Fatalf("keywords %+v", kws)
	}
	if !strings.HasSuffix(string(out), "\r\n\r\nThe fix is ready.\r\n") || strings.Contains(string(out), "x-cve") || !strings.Contains(string(out), "charset=utf-8") {
		t.Errorf("stripped %q", out)
	}

	multi := "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nx-list: 2026-001\r\nx-resend: up@example.net\r\nsee the patch\r\n--b1\r\nContent-Type: text/x-diff\r\n\r\n--- a\r\n+++ b\r\n--b1--\r\n"
	kws, out = stripKeywords([]byte(multi), 0)
	if len(kws) != 2 || strings.Contains(string(out), "x-resend") || !strings.Contains(string(out), "see the patch\r\n--b1\r\nContent-Type: text/x-diff\r\n\r\n--- a\r\n+++ b\r\n--b1--\r\n") {
		t.Errorf("multipart: %+v\n%q", kws, out)
	}
	if kws, out := stripKeywords([]byte("Content-Type: text/html\r\n\r\nx-list: 1\r\n"), 0); kws != nil || string(out) != "Content-Type: text/html\r\n\r\nx-list: 1\r\n" {
		t.Errorf("html part changed")
	}
	_, out = stripKeywords([]byte("Content-Type: text/plain\r\n\r\nx-list: 2026-001\r\nx-list-members\r\n"), 0)
	if !blank(out) {
		t.Errorf("keywords only: %q not blank", out)
	}
}
