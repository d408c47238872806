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
		"Kind": "prenotify", "Reply": "550 5.1.1 user unknown",
		// Incident notices (package embargo).
		"ID": "2026-001", "Project": "libexample",
		"KeyKnown": true, "Undecryptable": false, "MinNotice": "48 hours", "MaxEmbargo": "14 days", "Escalation": "1 day",
		"Decision": "confirmed", "Privacy": "private", "Prefix": "[vs]", "Date": "Tuesday 2026-12-01 10:00 UTC",
		"DateISO": "2026-12-01T10:00Z", "Title": "Heap overflow in the frobnicator", "Facts": "CVE:   CVE-2026-12345\n",
		"Announce": "announce@example.org", "OldDate": "Monday 2026-11-30 10:00 UTC", "Notified": "Friday 2026-11-27 10:00 UTC",
		"CVE": "CVE-2026-12345", "Advisory": "EXAMPLE-2026-001: Heap overflow\n", "Broken": false,
		"URL": "https://example.org/advisories/2026-001", "Lists": "announce@example.org", "Credits": "Rita Reporter",
		"Age": "1 day", "Received": "Monday 2026-11-23 10:00 UTC",
	}
	for _, name := range Names() {
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
