package templates

import (
	"strings"
	"testing"
)

func TestEveryNoticeRenders(t *testing.T) {
	data := Sample()
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
		"Role": "fixer", "Reason": "r", "Frozen": false, "Failures": 0, "Delivery": false})
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
