package crypto

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// ErrMalformed is matched (errors.Is) by errors about unparsable MIME or
// PGP structure.
var ErrMalformed = errors.New("malformed message")

var crlf = []byte("\r\n")

// toCRLF converts bare LF line ends to CRLF, returning b itself when it is
// already canonical.
func toCRLF(b []byte) []byte { return toCRLFAfter(0, b) }

// toCRLFAfter is toCRLF for b following a byte prev.
func toCRLFAfter(prev byte, b []byte) []byte {
	bare := 0
	for i, c := range b {
		if c == '\n' && (i == 0 && prev != '\r' || i > 0 && b[i-1] != '\r') {
			bare++
		}
	}
	if bare == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+bare)
	for i, c := range b {
		if c == '\n' && (i == 0 && prev != '\r' || i > 0 && b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// entity is one MIME entity kept as raw bytes: the signed bytes of a
// multipart/signed part must not go through a decoder.
type entity struct {
	raw    []byte // header and body, CRLF
	header textproto.Header
	body   []byte // still transfer-encoded
}

// splitEntity parses the header section of a CRLF entity.
func splitEntity(raw []byte, lim *Limits) (*entity, error) {
	var head, body []byte
	switch {
	case bytes.HasPrefix(raw, crlf):
		body = raw[2:]
	default:
		i := bytes.Index(raw, []byte("\r\n\r\n"))
		if i < 0 {
			head = raw
		} else {
			head, body = raw[:i+2], raw[i+4:]
		}
	}
	if len(head) > lim.MaxHeaderBytes {
		return nil, &LimitError{What: "header size", Limit: int64(lim.MaxHeaderBytes)}
	}
	var h textproto.Header
	if len(head) > 0 {
		buf := make([]byte, 0, len(head)+4)
		buf = append(buf, head...)
		if !bytes.HasSuffix(buf, crlf) {
			buf = append(buf, crlf...)
		}
		buf = append(buf, crlf...)
		var err error
		h, err = textproto.ReadHeader(bufio.NewReader(bytes.NewReader(buf)))
		if err != nil {
			return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
		}
	}
	return &entity{raw: raw, header: h, body: body}, nil
}

// mediaType returns the lower-case media type and parameters; a missing or
// unparsable Content-Type is text/plain (RFC 2045 §5.2).
func mediaType(h textproto.Header) (string, map[string]string) {
	v := h.Get("Content-Type")
	if v == "" {
		return "text/plain", map[string]string{}
	}
	t, params, err := mime.ParseMediaType(v)
	if err != nil {
		if errors.Is(err, mime.ErrInvalidMediaParameter) && t != "" {
			return strings.ToLower(t), params
		}
		return "text/plain", map[string]string{}
	}
	return strings.ToLower(t), params
}

// splitMultipart returns the raw bodies of the parts of a multipart body
// (RFC 2046 §5.1.1): each part excludes the CRLF that precedes the next
// delimiter. A missing close delimiter ends the last part at the end of
// the body.
func splitMultipart(body []byte, boundary string, maxParts int) ([][]byte, error) {
	if boundary == "" || len(boundary) > 200 {
		return nil, fmt.Errorf("%w: bad multipart boundary", ErrMalformed)
	}
	delim := []byte("--" + boundary)
	var parts [][]byte
	start := -1
	pos := 0
	for pos < len(body) {
		var line []byte
		next := len(body)
		if i := bytes.Index(body[pos:], crlf); i >= 0 {
			line = body[pos : pos+i]
			next = pos + i + 2
		} else {
			line = body[pos:]
		}
		if bytes.HasPrefix(line, delim) {
			rest := line[len(delim):]
			closing := bytes.HasPrefix(rest, []byte("--"))
			if closing {
				rest = rest[2:]
			}
			if len(bytes.TrimRight(rest, " \t")) == 0 {
				if start >= 0 {
					end := pos - 2
					if end < start {
						end = start
					}
					parts = append(parts, body[start:end])
					if len(parts) > maxParts {
						return nil, &LimitError{What: "MIME parts", Limit: int64(maxParts)}
					}
				}
				if closing {
					return parts, nil
				}
				start = next
			}
		}
		pos = next
	}
	if start >= 0 {
		parts = append(parts, body[start:])
		if len(parts) > maxParts {
			return nil, &LimitError{What: "MIME parts", Limit: int64(maxParts)}
		}
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: multipart without parts", ErrMalformed)
	}
	return parts, nil
}

// decodeBody undoes the Content-Transfer-Encoding of a leaf body.
func decodeBody(h textproto.Header, body []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "base64":
		b, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(stripSpace(body))))
		if err != nil {
			return nil, fmt.Errorf("%w: base64: %v", ErrMalformed, err)
		}
		return b, nil
	case "quoted-printable":
		b, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		if err != nil {
			return nil, fmt.Errorf("%w: quoted-printable: %v", ErrMalformed, err)
		}
		return b, nil
	}
	return body, nil
}

func stripSpace(b []byte) []byte {
	return bytes.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, b)
}

// walker visits a MIME tree under the depth and part limits.
type walker struct {
	lim   *Limits
	parts int
}

// walk calls fn for each entity, depth first; fn returns false to skip an
// entity's children.
func (w *walker) walk(raw []byte, depth int, fn func(e *entity, depth int) (bool, error)) error {
	if depth > w.lim.MaxDepth {
		return &LimitError{What: "MIME depth", Limit: int64(w.lim.MaxDepth)}
	}
	w.parts++
	if w.parts > w.lim.MaxParts {
		return &LimitError{What: "MIME parts", Limit: int64(w.lim.MaxParts)}
	}
	e, err := splitEntity(raw, w.lim)
	if err != nil {
		return err
	}
	descend, err := fn(e, depth)
	if err != nil || !descend {
		return err
	}
	t, params := mediaType(e.header)
	switch {
	case strings.HasPrefix(t, "multipart/"):
		parts, err := splitMultipart(e.body, params["boundary"], w.lim.MaxParts)
		if errors.Is(err, ErrMalformed) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, p := range parts {
			if err := w.walk(p, depth+1, fn); err != nil {
				return err
			}
		}
	case t == "message/rfc822" || t == "message/global":
		return w.walk(e.body, depth+1, fn)
	}
	return nil
}

// checkStructure checks a whole entity against the limits.
func checkStructure(raw []byte, lim *Limits) error {
	w := &walker{lim: lim}
	return w.walk(raw, 1, func(*entity, int) (bool, error) { return true, nil })
}

func randomBoundary() string {
	var b [15]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "cvd-" + hex.EncodeToString(b[:])
}

// headerBytes serialises h followed by the blank line.
func headerBytes(h textproto.Header) ([]byte, error) {
	var buf bytes.Buffer
	if err := textproto.WriteHeader(&buf, h); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// structural reports header fields that describe the MIME structure rather
// than the message (RFC 9788 §1.1 "Structural Header Fields").
func structural(name string) bool {
	n := strings.ToLower(name)
	return n == "mime-version" || strings.HasPrefix(n, "content-")
}
