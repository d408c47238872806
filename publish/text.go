package publish

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// TextWidth is the line width of the plain-text advisory and the CVE
// request; only a single word longer than that (a URL, a vector) exceeds it.
const TextWidth = 72

// wrap fills text to width columns with the given indent; paragraphs
// (separated by blank lines) stay apart, and lines that start with
// white space, "-" or "*" are kept as they are (lists, code).
func wrap(text, indent string, width int) string {
	var out []string
	for _, para := range strings.Split(strings.ReplaceAll(strings.TrimSpace(text), "\r\n", "\n"), "\n\n") {
		var lines []string
		var cur string
		flush := func() {
			if cur != "" {
				lines = append(lines, cur)
				cur = ""
			}
		}
		for _, line := range strings.Split(para, "\n") {
			t := strings.TrimSpace(line)
			if t == "" {
				continue
			}
			if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") || strings.HasPrefix(t, "- ") || strings.HasPrefix(t, "* ") {
				flush()
				if len(indent+line) <= width || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
					lines = append(lines, strings.TrimRight(indent+line, " "))
					continue
				}
			}
			for _, w := range strings.Fields(t) {
				switch {
				case cur == "":
					cur = indent + w
				case len(cur)+1+len(w) <= width:
					cur += " " + w
				default:
					lines = append(lines, cur)
					cur = indent + w
				}
			}
		}
		flush()
		if len(lines) > 0 {
			out = append(out, strings.Join(lines, "\n"))
		}
	}
	return strings.Join(out, "\n\n")
}

func heading(b *strings.Builder, title string) {
	fmt.Fprintf(b, "\n%s\n%s\n\n", title, strings.Repeat("-", len(title)))
}

// field writes "Label:   value" with continuation lines aligned.
func field(b *strings.Builder, label, value string) {
	const col = 13
	pad := strings.Repeat(" ", col)
	first := fmt.Sprintf("%-*s", col, label+":")
	w := wrap(value, pad, TextWidth)
	b.WriteString(first + strings.TrimPrefix(w, pad) + "\n")
}

func utc(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// TextAdvisory returns the plain-text advisory, wrapped at 72 columns,
// as posted to the announce list and oss-security.
func TextAdvisory(a *Advisory) (string, error) {
	if err := a.Validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	title := a.FullID() + ": " + a.Title
	b.WriteString(wrap(title, "", TextWidth) + "\n")
	b.WriteString(strings.Repeat("=", min(utf8.RuneCountInString(title), TextWidth)) + "\n\n")
	field(&b, "Project", fmt.Sprintf("%s (%s)", a.Project.Name, a.Project.Vendor))
	if a.CVE != "" {
		field(&b, "CVE", a.CVE)
	}
	if len(a.Related) > 0 {
		field(&b, "Related", strings.Join(a.Related, ", "))
	}
	if !a.Published.IsZero() {
		field(&b, "Published", utc(a.Published))
	}
	if a.Updated.After(a.Published) {
		field(&b, "Updated", utc(a.Updated))
	}
	if a.ProblemType != "" || a.CWE != "" {
		field(&b, "Type", TypeText(a.ProblemType, a.CWE))
	}
	for _, c := range a.Scores() {
		field(&b, "Severity", fmt.Sprintf("%s, CVSS v%s score %s", c.Severity, c.Version, c.ScoreString()))
		field(&b, "Vector", c.Vector)
	}
	field(&b, "Advisory", a.PageURL())
	if a.Status != Released {
		b.WriteString("\n" + wrap("EMBARGOED: this advisory is not public. Do not share it before "+
			utcOrTBD(a.Published)+".", "", TextWidth) + "\n")
	}

	heading(&b, "Description")
	b.WriteString(wrap(a.Description, "", TextWidth) + "\n")

	heading(&b, "Affected versions")
	for _, p := range a.Packages {
		b.WriteString(wrap("- "+packageLabel(p)+": "+affectedText(p), "", TextWidth) + "\n")
	}
	var fixes []string
	for _, p := range a.Packages {
		if f := p.FixedVersions(); len(f) > 0 {
			fixes = append(fixes, "- "+packageLabel(p)+": "+strings.Join(f, ", "))
		}
	}
	heading(&b, "Fixed versions")
	if len(fixes) == 0 {
		b.WriteString("No fixed version has been released yet.\n")
	}
	for _, f := range fixes {
		b.WriteString(wrap(f, "", TextWidth) + "\n")
	}

	if a.Workaround != "" {
		heading(&b, "Work-around")
		b.WriteString(wrap(a.Workaround, "", TextWidth) + "\n")
	}
	if len(a.Credits) > 0 {
		heading(&b, "Credits")
		for _, c := range a.Credits {
			b.WriteString(wrap("- "+c.DisplayName()+" ("+c.Kind().Words()+")", "", TextWidth) + "\n")
		}
	}
	refs := append([]Reference(nil), a.References...)
	if a.UpstreamAdvisory != "" {
		refs = append(refs, Reference{URL: a.UpstreamAdvisory, Name: "Upstream advisory"})
	}
	if len(refs) > 0 {
		heading(&b, "References")
		for _, r := range refs {
			if r.Name != "" {
				b.WriteString(wrap("- "+r.Name+":", "", TextWidth) + "\n  " + r.URL + "\n")
			} else {
				b.WriteString("- " + r.URL + "\n")
			}
		}
	}
	return b.String(), nil
}

// TypeText is an issue's type as advisories state it: "Heap overflow
// (CWE-122)", or the type or the CWE alone when only one is known.
func TypeText(problemType, cwe string) string {
	switch {
	case problemType == "":
		return cwe
	case cwe == "":
		return problemType
	}
	return problemType + " (" + cwe + ")"
}

// Wrap fills text's paragraphs to the width of text advisories.
func Wrap(text string) string { return wrap(text, "", TextWidth) }

func utcOrTBD(t time.Time) string {
	if t.IsZero() {
		return "the public date"
	}
	return utc(t)
}

func packageLabel(p Package) string {
	if p.Ecosystem != "" {
		if p.ProductName() != p.Name {
			return fmt.Sprintf("%s (%s package %s)", p.ProductName(), p.Ecosystem, p.Name)
		}
		return fmt.Sprintf("%s (%s)", p.Name, p.Ecosystem)
	}
	return p.ProductName()
}

// affectedText describes the affected versions of a package in words.
func affectedText(p Package) string {
	var parts []string
	for _, r := range p.Ranges {
		t := rangeText(r)
		if r.Type == RangeGit {
			t = "commits " + t
		}
		parts = append(parts, t)
	}
	parts = append(parts, p.Versions...)
	return strings.Join(parts, "; ")
}

// Mail is a message for the outbound queue: the caller adds the other
// headers and encrypts it. Subject never contains a line break.
type Mail struct {
	From, To, Subject, Body string
}

// oneLine removes line breaks and other control characters so a value
// cannot add a header.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }), " ")
}

// CVERequest returns the mail asking a CNA (to) for a CVE ID for the
// advisory, for projects that are not a CNA: everything CNAs ask for
// (vendor, product, versions, type, impact, vectors, description,
// discoverers, references, planned public date), and a request to keep
// the ID reserved until then.
func CVERequest(a *Advisory, from, to string) (Mail, error) {
	if err := a.Validate(); err != nil {
		return Mail{}, err
	}
	if a.CVE != "" {
		return Mail{}, fmt.Errorf("advisory %s already has %s", a.ID, a.CVE)
	}
	var b strings.Builder
	b.WriteString("Hello,\n\n")
	b.WriteString(wrap(fmt.Sprintf("We, the security team of %s (%s), ask for one CVE ID for the "+
		"vulnerability described below. Our reference is %s.", a.Project.Name, a.Project.Vendor, a.FullID()), "", TextWidth) + "\n")
	if a.Status != Released {
		b.WriteString("\n" + wrap("The issue is under embargo: please keep the ID RESERVED and this "+
			"information confidential until the public date, "+utcOrTBD(a.Published)+". We will "+
			"send the details for publication then.", "", TextWidth) + "\n")
	}
	b.WriteString("\n")
	field(&b, "Vendor", a.Project.Vendor)
	var products []string
	for _, p := range a.Packages {
		products = append(products, packageLabel(p))
	}
	field(&b, "Product", strings.Join(products, "; "))
	for _, p := range a.Packages {
		field(&b, "Affected", packageLabel(p)+": "+affectedText(p))
		if f := p.FixedVersions(); len(f) > 0 {
			field(&b, "Fixed", packageLabel(p)+": "+strings.Join(f, ", "))
		}
	}
	if a.ProblemType != "" || a.CWE != "" {
		field(&b, "Type", TypeText(a.ProblemType, a.CWE))
	}
	for _, c := range a.Scores() {
		field(&b, "CVSS", fmt.Sprintf("%s, v%s score %s", c.Severity, c.Version, c.ScoreString()))
		field(&b, "Vector", c.Vector)
		for _, m := range c.BaseMetrics() {
			if m.Key == "AV" {
				field(&b, "Attack", m.Words)
			}
		}
	}
	if !a.Published.IsZero() {
		field(&b, "Public date", utc(a.Published))
	}
	var finders []string
	for _, c := range a.Credits {
		finders = append(finders, c.DisplayName()+" ("+c.Kind().Words()+")")
	}
	if len(finders) > 0 {
		field(&b, "Credits", strings.Join(finders, "; "))
	}
	heading(&b, "Title")
	b.WriteString(wrap(a.Title, "", TextWidth) + "\n")
	heading(&b, "Description")
	b.WriteString(wrap(a.Description, "", TextWidth) + "\n")
	if a.Workaround != "" {
		heading(&b, "Work-around")
		b.WriteString(wrap(a.Workaround, "", TextWidth) + "\n")
	}
	heading(&b, "References")
	b.WriteString("- " + a.PageURL() + "\n  (our advisory, published at the public date)\n")
	for _, r := range a.References {
		b.WriteString("- " + r.URL + "\n")
	}
	if a.UpstreamAdvisory != "" {
		b.WriteString("- " + a.UpstreamAdvisory + "\n  (upstream advisory)\n")
	}
	b.WriteString("\n" + wrap("Thank you,", "", TextWidth) + "\n" + a.Project.Vendor + " security team\n")
	return Mail{
		From:    oneLine(from),
		To:      oneLine(to),
		Subject: oneLine(fmt.Sprintf("CVE ID request: %s %s", a.Project.Name, a.FullID())),
		Body:    b.String(),
	}, nil
}
