package crypto

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzMIMEStructure feeds arbitrary entities to the MIME walker that Open,
// Discover and the structure check use: it must not panic, must stay within
// the depth and part limits, must only hand out entities that are pieces of
// the input, and must decode every leaf body without panicking.
func FuzzMIMEStructure(f *testing.F) {
	f.Add([]byte(innerEntity))
	f.Add([]byte(nested(3)))
	f.Add([]byte(nested(fuzzLimits.MaxDepth + 2)))
	f.Add([]byte(signedPart))
	for _, s := range []string{
		// Unterminated boundary, preamble and epilogue.
		"Content-Type: multipart/mixed; boundary=b\r\n\r\npreamble\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\n\r\ntwo",
		// A boundary that is a prefix of another, and a closing delimiter with trailing space.
		"Content-Type: multipart/alternative; boundary=\"ab\"\r\n\r\n--abc\r\n\r\nx\r\n--ab\r\n\r\ny\r\n--ab-- \r\nepilogue\r\n",
		// A message/rfc822 inside a multipart inside a message/rfc822.
		"Content-Type: message/rfc822\r\n\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nbody\r\n--q--\r\n",
		// Transfer encodings, valid and broken.
		"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n",
		"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!\r\n",
		"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nsoft=\r\nbreak =3D =ZZ\r\n",
		// Bad Content-Type parameters, an empty and an oversized boundary.
		"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n\r\n",
		"Content-Type: multipart/mixed; boundary=" + strings.Repeat("b", 300) + "\r\n\r\n--" + strings.Repeat("b", 300) + "\r\n\r\nx\r\n",
		"Content-Type: multipart/mixed; boundary=b; boundary=c\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
		"Content-Type: text/plain; charset=\"unterminated\r\n\r\nx\r\n",
		// Folded and malformed header lines, a bare header without a body.
		"Subject: a\r\n b\r\nContent-Type: multipart/mixed;\r\n\tboundary=z\r\n\r\n--z\r\n\r\nx\r\n--z--\r\n",
		"no colon here\r\n\r\nbody\r\n",
		"Content-Type: text/plain\r\n",
		"\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		lim := fuzzLimits
		raw = toCRLF(raw)
		w := &walker{lim: &lim}
		visited := 0
		err := w.walk(raw, 1, func(e *entity, depth int) (bool, error) {
			visited++
			if depth > lim.MaxDepth {
				t.Fatalf("entity at depth %d, limit %d", depth, lim.MaxDepth)
			}
			if !bytes.Contains(raw, e.raw) || !bytes.Contains(e.raw, e.body) {
				t.Fatalf("entity is not a piece of the input")
			}
			typ, _ := mediaType(e.header)
			if typ == "" {
				t.Fatalf("empty media type for %q", e.header.Get("Content-Type"))
			}
			if !strings.HasPrefix(typ, "multipart/") && !strings.HasPrefix(typ, "message/") {
				if b, err := decodeBody(e.header, e.body); err == nil && len(b) > len(e.body) {
					t.Fatalf("decoded body of %d bytes from %d", len(b), len(e.body))
				} else if err != nil && !errors.Is(err, ErrMalformed) {
					t.Fatalf("decode error %v is not ErrMalformed", err)
				}
			}
			return true, nil
		})
		if visited > lim.MaxParts {
			t.Fatalf("visited %d entities, limit %d", visited, lim.MaxParts)
		}
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrLimit) {
			t.Fatalf("error %v is neither ErrMalformed nor ErrLimit", err)
		}
		if cerr := checkStructure(raw, &lim); (cerr == nil) != (err == nil) {
			t.Fatalf("checkStructure: %v, walk: %v", cerr, err)
		}
	})
}
