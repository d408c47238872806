package templates

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

// Problem is something wrong with one override file.
type Problem struct {
	File string
	// Line is the line in File, 0 when the problem is the whole file.
	Line int
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Msg)
}

// Load reads the override folder dir: each file NAME.txt replaces the
// embedded notice NAME. Every file must name a notice, parse, and render
// against the sample incident (Sample) into a Subject line, a blank line
// and a body; otherwise Load fails and names each file and line. Files
// whose names start with "." are ignored.
func Load(dir string) (*Set, error) {
	s, problems, err := load(dir)
	if err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		msgs := make([]string, len(problems))
		for i, p := range problems {
			msgs[i] = p.String()
		}
		return nil, fmt.Errorf("notice templates in %s ('cvd templates check %s' lists them again):\n  %s", dir, dir, strings.Join(msgs, "\n  "))
	}
	return s, nil
}

// Check reports every problem of the override folder dir, as Load finds
// them. The error is for a folder that cannot be read.
func Check(dir string) ([]Problem, error) {
	_, problems, err := load(dir)
	return problems, err
}

// execErrRE splits text/template's "template: NAME:LINE[:COL]: MSG".
var execErrRE = regexp.MustCompile(`^template: [^:]+:(\d+)(?::\d+)?: (.*)$`)

func problemOf(file string, err error) Problem {
	var ee template.ExecError
	if errors.As(err, &ee) {
		err = ee.Err
	}
	msg := err.Error()
	if m := execErrRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{File: file, Line: line, Msg: m[2]}
	}
	return Problem{File: file, Msg: strings.TrimPrefix(msg, "template: ")}
}

func load(dir string) (*Set, []Problem, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("notice templates: %w", err)
	}
	s := &Set{tmpl: map[string]*template.Template{}, files: map[string]string{}}
	var problems []Problem
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		file := filepath.Join(dir, e.Name())
		name, ok := strings.CutSuffix(e.Name(), ".txt")
		if _, known := embedded.tmpl[name]; !ok || !known || e.IsDir() {
			problems = append(problems, Problem{File: file, Msg: fmt.Sprintf("matches no notice; name a file NOTICE.txt after one of: %s", strings.Join(Names(), ", "))})
			continue
		}
		text, err := os.ReadFile(file)
		if err != nil {
			problems = append(problems, Problem{File: file, Msg: err.Error()})
			continue
		}
		if p := checkText(file, string(text)); p != nil {
			problems = append(problems, *p)
			continue
		}
		t, err := parse(name, string(text))
		if err != nil {
			problems = append(problems, problemOf(file, err))
			continue
		}
		if p := checkRender(file, t); p != nil {
			problems = append(problems, *p)
			continue
		}
		s.tmpl[name] = t
		s.files[name] = file
	}
	sort.Slice(problems, func(i, j int) bool { return problems[i].File < problems[j].File })
	return s, problems, nil
}

// checkText checks the layout of a template before it is parsed.
func checkText(file, text string) *Problem {
	if strings.Contains(text, "\r") {
		return &Problem{File: file, Msg: "has CR characters; save it with LF line endings"}
	}
	if !strings.HasPrefix(text, "Subject: ") {
		return &Problem{File: file, Line: 1, Msg: `must start with "Subject: ", then a blank line and the body`}
	}
	return nil
}

// checkRender renders t against the sample incident.
func checkRender(file string, t *template.Template) *Problem {
	var b strings.Builder
	if err := t.Execute(&b, Sample()); err != nil {
		p := problemOf(file, err)
		return &p
	}
	head, body, ok := strings.Cut(b.String(), "\n\n")
	if !ok || !strings.HasPrefix(head, "Subject: ") {
		return &Problem{File: file, Line: 1, Msg: "the rendered notice must be a Subject: line, a blank line and the body"}
	}
	if strings.ContainsAny(head, "\r\n") {
		return &Problem{File: file, Line: 1, Msg: "the Subject: line must be one line followed by a blank line; a notice sets no other header"}
	}
	if strings.TrimSpace(strings.TrimPrefix(head, "Subject: ")) == "" {
		return &Problem{File: file, Line: 1, Msg: "the subject is empty"}
	}
	if strings.TrimSpace(body) == "" {
		return &Problem{File: file, Msg: "the body is empty"}
	}
	return nil
}

// Sample returns the data of a sample incident, with every field any
// notice uses: 'cvd templates check' renders each file with it.
func Sample() map[string]any {
	return map[string]any{
		// List notices (package lists).
		"List": "2026-001", "ListAddress": "security+2026-001@example.org", "Reason": "the key expired",
		"Email": "dev@example.net", "Role": "fixer", "Frozen": true, "Failures": 3, "Delivery": false,
		"Address": "security+2026-001@example.org", "Intake": "security@example.org",
		"Held": true, "From": "Alice <alice@example.net>", "Signature": "good", "Signer": "ABCD",
		"Encrypted": true, "NotVerified": false, "Notes": []string{"1 unencrypted part dropped"},
		"AuthResults": "mail.example.org; spf=pass smtp.mailfrom=rita@example.net; dkim=none; dmarc=none header.from=example.net",
		"Results":     []string{"x-list-members: ok"}, "Distributed": true,
		"Domain": "example.org", "ConfirmAddress": "announce+confirm-abc@example.org", "Expires": "2026-11-24 10:00 UTC",
		"Fingerprint": "0123456789ABCDEF0123456789ABCDEF01234567", "UnsubscribeAddress": "announce+unsubscribe@example.org",
		"Kind": "prenotify", "Reply": "550 5.1.1 user unknown",
		// Incident notices (package embargo).
		"ID": "2026-001", "Project": "libexample",
		"KeyKnown": true, "Undecryptable": false, "MinNotice": "48 hours", "MaxEmbargo": "14 days", "Escalation": "1 day",
		"Decision": "confirmed", "Privacy": "private", "Prefix": "[vs]", "Date": "Tuesday 2026-12-01 10:00 UTC",
		"DateISO": "2026-12-01T10:00Z", "Title": "Heap overflow in the frobnicator", "Facts": "CVE:   CVE-2026-12345\n",
		"Announce": "announce@example.org", "OldDate": "Monday 2026-11-30 10:00 UTC", "Notified": "Friday 2026-11-27 10:00 UTC",
		"CVE": "CVE-2026-12345", "Advisory": "LIBEXAMPLE-2026-001: Heap overflow in the frobnicator\n", "Broken": false,
		"Topics": "exploit", "Decisions": "Exploit:      public 7 days after the release (Tuesday 2026-12-08 10:00 UTC)",
		"Age": "1 day", "Received": "Monday 2026-11-23 10:00 UTC", "Missing": "description",
		"KeyProblem": "the key 0123456789ABCDEF0123456789ABCDEF01234567 has expired", "Where": "cvd.toml (embargo.team)",
		"Dropped": "    89ABCDEF0123456789ABCDEF0123456789ABCDEF (came with a report)", "Size": "12345 bytes", "Acked": true, "NotAcked": false,
		"OldFingerprint": "89ABCDEF0123456789ABCDEF0123456789ABCDEF",
		"BrokenNote":     "The embargo on this issue ended early (leaked), so this advisory is published now\ninstead of on the planned date.",
		"URL":            "https://example.org/advisories/2026-001.html", "Lists": "announce@example.org", "Credits": "Rita Reporter",
		"Agenda": "DUE (UTC)         INCIDENT  STATE  WHAT\n2026-12-01 10:00  2026-001  prenotified  release at the public date", "Every": "7 days", "Open": "1 open incident",
		"FirstNotice": "Friday 2026-11-27 10:00 UTC", "MaxUntil": "Friday 2026-12-11 10:00 UTC", "HardLimit": "distros",
		"Files": []string{"0001-fix.patch (text/x-patch, 1234 bytes)"}, "Topic": "heap overflow in the frobnicator",
		"Patches": []map[string]string{{"Name": "0001-fix.patch", "Text": "diff --git a/x b/x\n"}}, "PreNotified": "Friday 2026-11-27 10:00 UTC",
		"ZeroDay": true, "Affected": []string{"libexample from 1.0"}, "Description": "A long header overflows a buffer.",
		"Workaround": "Limit header sizes in the proxy.", "HardMax": "distros (14 days)",
		// Dependency incidents (package embargo).
		"UpstreamID": "GHSA-54rr-7fvw-6x8f", "Summary": "Denial of service in the header parser", "Aliases": "CVE-2024-26146",
		"Ranges": []string{"rack (RubyGems): >= 2.1.0, < 2.1.4.4"}, "Components": []string{"rack 2.1.2 (RubyGems)"},
		"Justifications": "component_not_present, vulnerable_code_not_present", "Decided": "not affected",
		"Withdrawn": "Sunday 2026-11-29 10:00 UTC", "State": "new",
		// The triage digest (package embargo).
		"Count": 2, "New": 1, "Since": "Monday 2026-11-23 09:00 UTC",
		"Waiting": "  1  2026-11-23T09:30:00Z  from x@spam.example (192.0.2.1:4000), 812 bytes\n      subject: offer\n      held: sender over its limit",
	}
}
