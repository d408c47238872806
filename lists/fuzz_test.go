package lists

import (
	"testing"
)

// FuzzStripKeywords feeds arbitrary entities to the keyword stripper: it
// must not panic, and without keywords it must return the entity as is.
func FuzzStripKeywords(f *testing.F) {
	f.Add([]byte("Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nx-list: 2026-001\r\nx-cve: CVE-1\r\nbody=\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx-list: 1\r\n--b--\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n\r\n"))
	f.Add([]byte("Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\neC1saXN0OiAx\r\n"))
	f.Fuzz(func(t *testing.T, ent []byte) {
		kws, out := stripKeywords(ent, 0)
		if kws == nil && string(out) != string(ent) {
			t.Fatalf("no keywords but the entity changed")
		}
		for _, k := range kws {
			if k.Name == "" {
				t.Fatalf("empty keyword from %q", ent)
			}
		}
		blank(out)
	})
}
