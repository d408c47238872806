package templates

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"path"
	"sort"
	"strings"
	"sync/atomic"
	"text/template"
	"unicode"
)

//go:embed notices/*.txt
var files embed.FS

// embedded is the set of the embedded notices.
var embedded = mustEmbedded()

// current is the set Render uses; nil means embedded. Use sets it.
var current atomic.Pointer[Set]

func mustEmbedded() *Set {
	s := &Set{tmpl: map[string]*template.Template{}}
	names, err := fs.Glob(files, "notices/*.txt")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		text, err := files.ReadFile(n)
		if err != nil {
			panic(err)
		}
		name := strings.TrimSuffix(path.Base(n), ".txt")
		s.tmpl[name] = template.Must(parse(name, string(text)))
	}
	return s
}

func parse(name, text string) (*template.Template, error) {
	return template.New(name + ".txt").Option("missingkey=error").Parse(text)
}

// Set is a set of notices: the embedded ones, some of them replaced by
// the files of an override folder (see Load).
type Set struct {
	tmpl map[string]*template.Template
	// files are the override files by notice name.
	files map[string]string
	// Log receives overrides that fail at render time; slog.Default()
	// when nil.
	Log *slog.Logger
}

// Default returns the set of the embedded notices.
func Default() *Set { return embedded }

// Names returns the names of every notice, sorted.
func Names() []string {
	var out []string
	for n := range embedded.tmpl {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Embedded returns the text of the embedded notice name ("ack"), as
// 'cvd templates export' writes it.
func Embedded(name string) ([]byte, error) {
	if _, ok := embedded.tmpl[name]; !ok {
		return nil, fmt.Errorf("no notice %q", name)
	}
	return files.ReadFile("notices/" + name + ".txt")
}

// Overrides returns the override file of each replaced notice, by name.
func (s *Set) Overrides() map[string]string {
	out := map[string]string{}
	for n, f := range s.files {
		out[n] = f
	}
	return out
}

// Use makes s the set that Render uses in this process; nil restores the
// embedded notices. cvd serve calls it once at start, after Load
// validated the folder and before any notice is rendered; the lists and
// embargo packages render through Render and so see the overrides.
func Use(s *Set) {
	current.Store(s)
}

func active() *Set {
	if s := current.Load(); s != nil {
		return s
	}
	return embedded
}

// Rendered is a notice's text.
type Rendered struct {
	// Subject is one line of printable text.
	Subject string
	// Body is the text, lines ending in LF.
	Body string
}

// Render renders the notice name (e.g. "missed") with data, from the set
// chosen with Use (the embedded notices unless an override folder is in
// use). A notice file starts with a "Subject: " line and a blank line;
// the rest is the body.
func Render(name string, data any) (*Rendered, error) {
	return active().Render(name, data)
}

// Render renders the notice name with data. An override that fails (data
// it did not expect) is logged and the embedded notice is rendered
// instead: a notice is never lost to a customised text.
func (s *Set) Render(name string, data any) (*Rendered, error) {
	t, ok := s.tmpl[name]
	if !ok {
		t, ok = embedded.tmpl[name]
	}
	if !ok {
		return nil, fmt.Errorf("render notice %s: no such notice", name)
	}
	r, err := execute(t, data)
	if err != nil && s.files[name] != "" {
		log := s.Log
		if log == nil {
			log = slog.Default()
		}
		log.Warn("notice override failed; the embedded notice is used", "notice", name, "file", s.files[name], "err", err)
		r, err = execute(embedded.tmpl[name], data)
	}
	if err != nil {
		return nil, fmt.Errorf("render notice %s: %w", name, err)
	}
	return r, nil
}

func execute(t *template.Template, data any) (*Rendered, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, err
	}
	head, body, ok := strings.Cut(b.String(), "\n\n")
	subject, found := strings.CutPrefix(head, "Subject: ")
	if !ok || !found {
		return nil, fmt.Errorf("%s: must start with a Subject: line and a blank line", t.Name())
	}
	return &Rendered{Subject: HeaderSafe(subject), Body: body}, nil
}

// HeaderSafe makes s safe as a header field value: line breaks and other
// control characters become spaces, runs of spaces one, bidirectional
// formatting characters are dropped, and the result is at most 200
// characters.
func HeaderSafe(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if r >= '\u202A' && r <= '\u202E' || r >= '\u2066' && r <= '\u2069' {
			continue
		}
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

// EncodeHeader returns s made HeaderSafe and, when it is not plain ASCII,
// RFC 2047 encoded (Q encoding, UTF-8), so that a Subject never goes out
// as raw 8-bit.
func EncodeHeader(s string) string {
	return mime.QEncoding.Encode("utf-8", HeaderSafe(s))
}
