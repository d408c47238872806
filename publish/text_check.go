package publish

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// bidiNames names the bidirectional formatting characters that can make
// published text read differently from what it says (Trojan Source).
var bidiNames = map[rune]string{
	'\u202A': "LEFT-TO-RIGHT EMBEDDING",
	'\u202B': "RIGHT-TO-LEFT EMBEDDING",
	'\u202C': "POP DIRECTIONAL FORMATTING",
	'\u202D': "LEFT-TO-RIGHT OVERRIDE",
	'\u202E': "RIGHT-TO-LEFT OVERRIDE",
	'\u2066': "LEFT-TO-RIGHT ISOLATE",
	'\u2067': "RIGHT-TO-LEFT ISOLATE",
	'\u2068': "FIRST STRONG ISOLATE",
	'\u2069': "POP DIRECTIONAL ISOLATE",
}

// CheckText refuses text that would spoof or break a public output:
// invalid UTF-8, bidirectional formatting characters (U+202A–U+202E,
// U+2066–U+2069), C0 and C1 control characters, DEL and the Unicode line
// and paragraph separators. Multiline text may hold newlines and tabs.
// The error names the first offending character.
func CheckText(s string, multiline bool) error {
	if !utf8.ValidString(s) {
		return errors.New("is not valid UTF-8")
	}
	for i, r := range s {
		if multiline && (r == '\n' || r == '\t') {
			continue
		}
		var what string
		switch {
		case bidiNames[r] != "":
			what = bidiNames[r] + ", a bidirectional formatting character that can make text read differently from what it says"
		case r == '\n' || r == '\r':
			what = "a line break (this field is one line)"
		case r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f:
			what = "a control character"
		case r == '\u2028' || r == '\u2029':
			what = "a Unicode line or paragraph separator"
		default:
			continue
		}
		return fmt.Errorf("contains U+%04X (%s) at byte %d", r, what, i)
	}
	return nil
}

// checkTexts adds an error for each public text field of a that
// CheckText refuses.
func (a *Advisory) checkTexts(bad func(format string, args ...any)) {
	check := func(name, s string, multiline bool) {
		if err := CheckText(s, multiline); err != nil {
			bad("%s %v", name, err)
		}
	}
	check("title", a.Title, false)
	check("description", strings.ReplaceAll(a.Description, "\r\n", "\n"), true)
	check("type", a.ProblemType, false)
	check("work-around", strings.ReplaceAll(a.Workaround, "\r\n", "\n"), true)
	for _, p := range a.Packages {
		check("package name", p.Name, false)
		check("product name", p.Product, false)
		check("ecosystem", p.Ecosystem, false)
		for _, r := range p.Ranges {
			check("version", r.Introduced+r.Fixed+r.LastAffected, false)
		}
		for _, v := range p.Versions {
			check("version", v, false)
		}
	}
	for _, c := range a.Credits {
		check("credit name", c.Name, false)
	}
	for _, r := range a.References {
		check("reference name", r.Name, false)
	}
	for _, r := range a.Related {
		check("related ID", r, false)
	}
}

// Missing returns what a public advisory still lacks (a title, a
// description, an affected package), in words a coordinator can act on;
// none means it can be released. Validate reports these too, among the
// record errors.
func (a *Advisory) Missing() []string {
	var out []string
	if strings.TrimSpace(a.Title) == "" {
		out = append(out, "title")
	}
	if strings.TrimSpace(a.Description) == "" {
		out = append(out, "description")
	}
	if len(a.Packages) == 0 {
		out = append(out, "affected versions")
	}
	return out
}
