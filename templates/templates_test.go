package templates

import (
	"strings"
	"testing"
)

func TestEveryNoticeRenders(t *testing.T) {
	data := map[string]any{
		"List": "2026-001", "ListAddress": "security+2026-001@example.org", "Reason": "the key expired",
		"Email": "dev@example.net", "Role": "fixer", "Frozen": true, "Failures": 3,
		"Address": "security+2026-001@example.org", "Intake": "security@example.org",
		"Held": true, "From": "Alice <alice@example.net>", "Signature": "good", "Signer": "ABCD",
		"Encrypted": true, "NotVerified": false, "Notes": []string{"1 unencrypted part dropped"},
		"Results": []string{"x-list-members: ok"}, "Distributed": true,
		"Domain": "example.org", "ConfirmAddress": "announce+confirm-abc@example.org", "Expires": "2026-11-24 10:00 UTC",
		"Fingerprint": "ABCD", "UnsubscribeAddress": "announce+unsubscribe@example.org",
	}
	for _, tpl := range parsed.Templates() {
		name := strings.TrimSuffix(tpl.Name(), ".txt")
		if name == "" {
			continue
		}
		r, err := Render(name, data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if r.Subject == "" || strings.TrimSpace(r.Body) == "" || strings.Contains(r.Body, "<no value>") {
			t.Errorf("%s: subject %q body %q", name, r.Subject, r.Body)
		}
	}
	if _, err := Render("missed", map[string]any{"List": "x"}); err == nil {
		t.Error("missing value accepted")
	}
}

func TestSubjectCannotInjectHeaders(t *testing.T) {
	r, err := Render("keyproblem", map[string]any{"List": "2026-001\r\nBcc: victim@example.com", "Email": "a@b\nX-Evil: 1",
		"Role": "fixer", "Reason": "r", "Frozen": false, "Failures": 0})
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(r.Subject, "\r\n") {
		t.Errorf("subject %q has a line break", r.Subject)
	}
	if HeaderSafe("a\u2028b\x00c\td   e") != "a b c d e" {
		t.Errorf("HeaderSafe = %q", HeaderSafe("a\u2028b\x00c\td   e"))
	}
	if n := len(HeaderSafe(strings.Repeat("x", 1000))); n > 204 {
		t.Errorf("HeaderSafe kept %d bytes", n)
	}
}
