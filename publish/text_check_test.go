package publish

import (
	"strings"
	"testing"
)

func TestCheckText(t *testing.T) {
	for _, c := range []struct {
		s         string
		multiline bool
		want      string // "" = accepted; else in the error
	}{
		{"Heap overflow in the parser", false, ""},
		{"Débordement de tampon — l’analyseur", false, ""},
		{"two\nlines\tand a tab", true, ""},
		{"a\u202Eb", false, "U+202E (RIGHT-TO-LEFT OVERRIDE"},
		{"a\u2066b", true, "U+2066 (LEFT-TO-RIGHT ISOLATE"},
		{"a\u2069", false, "U+2069"},
		{"two\nlines", false, "U+000A"},
		{"tab\there", false, "U+0009"},
		{"esc\x1b[31m", true, "U+001B (a control character)"},
		{"c1\u0085", true, "U+0085"},
		{"del\x7f", false, "U+007F"},
		{"sep\u2028", true, "U+2028"},
		{"\xff", false, "UTF-8"},
	} {
		err := CheckText(c.s, c.multiline)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("CheckText(%q, %v) = %v, want %q", c.s, c.multiline, err, c.want)
		}
	}
}

// TestValidateRefusesSpoofingText: a value stored before set-time checks
// existed is still never published.
func TestValidateRefusesSpoofingText(t *testing.T) {
	a := sampleAdvisory()
	a.Title = "Fix \u202Eevil"
	if err := a.Validate(); err == nil || !strings.Contains(err.Error(), "title contains U+202E") {
		t.Errorf("Validate = %v", err)
	}
	a = sampleAdvisory()
	a.Description = ""
	a.Packages = nil
	if m := strings.Join(a.Missing(), ", "); m != "description, affected versions" {
		t.Errorf("Missing = %q", m)
	}
}
