package templates

import (
	"bytes"
	"embed"
	"fmt"
	"strings"
	"text/template"
	"unicode"
)

//go:embed notices/*.txt
var files embed.FS

var parsed = template.Must(template.New("").Option("missingkey=error").ParseFS(files, "notices/*.txt"))

// Rendered is a notice's text.
type Rendered struct {
	// Subject is one line of printable text.
	Subject string
	// Body is the text, lines ending in LF.
	Body string
}

// Render renders the notice name (e.g. "missed") with data. A notice file
// starts with a "Subject: " line and a blank line; the rest is the body.
func Render(name string, data any) (*Rendered, error) {
	var b bytes.Buffer
	if err := parsed.ExecuteTemplate(&b, name+".txt", data); err != nil {
		return nil, fmt.Errorf("render notice %s: %w", name, err)
	}
	head, body, ok := strings.Cut(b.String(), "\n\n")
	subject, found := strings.CutPrefix(head, "Subject: ")
	if !ok || !found {
		return nil, fmt.Errorf("render notice %s: must start with a Subject: line and a blank line", name)
	}
	return &Rendered{Subject: HeaderSafe(subject), Body: body}, nil
}

// HeaderSafe makes s safe as a header field value: line breaks and other
// control characters become spaces, runs of spaces one, and the result is
// at most 200 characters.
func HeaderSafe(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == '\u2028' || r == '\u2029' {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
		if b.Len() >= 200 {
			break
		}
	}
	return b.String()
}
