package publish

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// checkWidth fails for lines over 72 columns unless they are one word.
func checkWidth(t *testing.T, name, text string) {
	t.Helper()
	for i, line := range strings.Split(text, "\n") {
		if utf8.RuneCountInString(line) > TextWidth && len(strings.Fields(line)) > 1 &&
			!strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(line, "Vector:")), "CVSS:") {
			t.Errorf("%s: line %d has %d columns: %q", name, i+1, utf8.RuneCountInString(line), line)
		}
	}
}

func TestTextAdvisory(t *testing.T) {
	txt, err := TextAdvisory(sampleAdvisory())
	if err != nil {
		t.Fatal(err)
	}
	checkWidth(t, "advisory", txt)
	for _, want := range []string{
		"LIBEXAMPLE-2026-001: Heap buffer overflow",
		"CVE:         CVE-2026-12345",
		"Published:   2026-03-03 10:00 UTC",
		"Severity:    Critical, CVSS v3.1 score 9.8",
		"Vector:      CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:P",
		"- libexample (Go package example.org/libexample): >=1.0.0, <1.2.3;",
		"- frobd: commits >=0123456789abcdef0123456789abcdef01234567,",
		"Work-around\n-----------\n\nSet max_header_size",
		"- Jane Researcher (finder)\n- Anonymous (reporter)\n- Élodie Fixer (remediation developer)",
		"https://upstream.example.com/advisories/UP-2026-7",
		"Type:        Out-of-bounds write (CWE-787)",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("advisory lacks %q:\n%s", want, txt)
		}
	}
	if strings.Contains(txt, "EMBARGOED") {
		t.Error("released advisory says embargoed")
	}
	a := sampleAdvisory()
	a.Status = Embargoed
	txt, _ = TextAdvisory(a)
	if !strings.Contains(txt, "EMBARGOED: this advisory is not public. Do not share it before\n2026-03-03 10:00 UTC.") {
		t.Errorf("embargoed advisory lacks the warning:\n%s", txt)
	}
}

func TestCVERequest(t *testing.T) {
	a := sampleAdvisory()
	a.CVE = ""
	a.Status = Embargoed
	m, err := CVERequest(a, "security@example.org", "cve-request@cna.example\r\nBcc: evil@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(m.To+m.Subject+m.From, "\r\n") {
		t.Errorf("header values with line breaks: %q %q %q", m.From, m.To, m.Subject)
	}
	if strings.Contains(m.Subject, "overflow") {
		t.Errorf("subject gives the issue away: %q", m.Subject)
	}
	checkWidth(t, "request", m.Body)
	for _, want := range []string{"keep the ID RESERVED", "2026-03-03 10:00 UTC", "Vendor:      The Example Project",
		"Affected:    libexample (Go package example.org/libexample): >=1.0.0,\n             <1.2.3; >=1.3.0, <1.3.1", "Fixed:       frobd: 89abcdef",
		"Type:        Out-of-bounds write (CWE-787)", "Attack:      Network", "Jane Researcher (finder)", "Description\n-----------"} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("request lacks %q:\n%s", want, m.Body)
		}
	}
	if _, err := CVERequest(sampleAdvisory(), "a@b", "c@d"); err == nil {
		t.Error("request for an advisory that has a CVE")
	}
}
