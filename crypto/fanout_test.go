package crypto

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// Copies written one at a time into a reused buffer open for their own
// recipient only, with the list's good signature, and match Size.
func TestFanoutCopies(t *testing.T) {
	list, alice, bob, carol := ed(t, "list"), ed(t, "alice"), ed(t, "bob"), testKey(t, "carol", KindRSA3072)
	f, err := NewFanout([]byte(innerEntity), outerHeader("security+2026-001@example.org"), list, []*Key{alice.Public(), bob.Public(), carol.Public()}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if f.Len() != 3 {
		t.Fatalf("Len = %d", f.Len())
	}
	var buf []byte
	for i, k := range []*Key{alice, bob, carol} {
		buf = f.AppendCopy(buf[:0], i)
		if len(buf) != f.Size(i) {
			t.Fatalf("copy %d is %d bytes, Size says %d", i, len(buf), f.Size(i))
		}
		o, err := Open(buf, []*Key{k}, []*Key{list.Public()}, testNow, Limits{})
		if err != nil {
			t.Fatalf("open copy %d: %v", i, err)
		}
		if o.Signature != Good || o.Signer != list.Fingerprint() || !bytes.Contains(o.Entity, []byte("Grüße")) {
			t.Fatalf("copy %d: sig %v signer %s", i, o.Signature, o.Signer)
		}
		other := []*Key{alice, bob, carol}[(i+1)%3]
		if _, err := Open(buf, []*Key{other}, nil, testNow, Limits{}); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("copy %d opened by another recipient: %v", i, err)
		}
	}
}

// A copy made again from the shared part and the recipient's own part,
// as stored apart, is byte for byte the copy AppendCopy wrote; a shared
// part cut short or altered in its framing is refused, never misread.
func TestFanoutSharedCopy(t *testing.T) {
	list := ed(t, "list")
	var to []*Key
	for _, name := range []string{"alice", "bob", "carol", "dave"} {
		to = append(to, ed(t, name).Public())
	}
	to = append(to, testKey(t, "erin", KindRSA3072).Public())
	for _, size := range []int{0, 1, 2, 3, 100, 4099} {
		inner := []byte("Content-Type: text/plain\r\n\r\n" + strings.Repeat("x", size) + "\r\n")
		f, err := NewFanout(inner, outerHeader("security+2026-001@example.org"), list, to, testNow)
		if err != nil {
			t.Fatal(err)
		}
		shared := bytes.Clone(f.Shared())
		for i := range to {
			want := f.AppendCopy(nil, i)
			got, err := AppendSharedCopy([]byte("x"), shared, bytes.Clone(f.Head(i)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[1:], want) || got[0] != 'x' {
				t.Fatalf("size %d copy %d: assembled copy differs from AppendCopy", size, i)
			}
			if n, err := SharedCopySize(shared, len(f.Head(i))); err != nil || n != len(want) {
				t.Fatalf("size %d copy %d: SharedCopySize %d, %v; copy is %d bytes", size, i, n, err, len(want))
			}
		}
		for n := range min(len(shared), 200) {
			if _, err := AppendSharedCopy(nil, shared[:n], f.Head(0)); err == nil {
				t.Fatalf("shared part cut to %d bytes accepted", n)
			}
		}
		overlong := binary.AppendUvarint([]byte(sharedMagic), uint64(len(shared)))
		for _, bad := range [][]byte{append(overlong, shared[len(sharedMagic)+2:]...), append([]byte("cvd-fanout\x02"), shared[len(sharedMagic):]...)} {
			if _, err := AppendSharedCopy(nil, bad, f.Head(0)); err == nil {
				t.Fatalf("malformed shared part accepted: %q", bad[:20])
			}
		}
	}
}

// An entity sealed in parts opens to exactly what it opens to sealed
// whole, line ends made CRLF across the parts' edges as within them.
func TestFanoutParts(t *testing.T) {
	list, alice := ed(t, "list"), ed(t, "alice")
	inner := "Subject: parts\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nline1\r"
	rest := []string{"\nline2\n", "", "\nline3\r\n", strings.Repeat("x", 200000) + "\n", "end\r\n"}
	whole := inner + strings.Join(rest, "")
	var parts [][]byte
	for _, r := range rest {
		parts = append(parts, []byte(r))
	}
	opened := func(f *Fanout) *Opened {
		t.Helper()
		o, err := Open(f.AppendCopy(nil, 0), []*Key{alice}, []*Key{list.Public()}, testNow, Limits{})
		if err != nil || o.Signature != Good {
			t.Fatalf("open: %v", err)
		}
		return o
	}
	fw, err := NewFanout([]byte(whole), outerHeader("security+2026-001@example.org"), list, []*Key{alice.Public()}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := NewFanoutParts([]byte(inner), parts, outerHeader("security+2026-001@example.org"), list, []*Key{alice.Public()}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	w, p := opened(fw), opened(fp)
	if !bytes.Equal(w.Entity, p.Entity) || !bytes.Contains(p.Entity, []byte("line1\r\nline2\r\n\r\nline3\r\n")) {
		t.Fatalf("sealed in parts:\n%q\nwhole:\n%q", p.Entity[:min(len(p.Entity), 400)], w.Entity[:min(len(w.Entity), 400)])
	}
}

func TestAppendEncodedLines(t *testing.T) {
	for _, na := range []int{0, 3, 6, 48, 51, 99} {
		for _, nb := range []int{0, 1, 2, 3, 47, 48, 49, 1000, 1001} {
			a, b := make([]byte, na), make([]byte, nb)
			rand.Read(a)
			rand.Read(b)
			want := appendLines(nil, []byte(base64.StdEncoding.EncodeToString(append(append([]byte{}, a...), b...))), nil)
			if got := appendEncodedLines(nil, a, b); !bytes.Equal(got, want) {
				t.Fatalf("a %d b %d:\n%s\nwant\n%s", na, nb, got, want)
			}
		}
	}
}

// coarseDigest hashes what the former whole-copy definition produced, so
// signature IDs recorded before stay the same.
func TestCoarseDigest(t *testing.T) {
	coarse := func(b []byte) []byte {
		b = bytes.ReplaceAll(b, []byte("\r"), nil)
		lines := bytes.Split(b, []byte("\n"))
		for i, l := range lines {
			lines[i] = bytes.TrimRight(l, " \t")
		}
		return bytes.TrimRight(bytes.Join(lines, []byte("\n")), "\n")
	}
	cases := []string{"", "\n", "\r\n", "a", "a\n", "a \r\n", "\n\nx", "a\r\n\r\n", "a\rb \t\r\n c\n\n\n", " \t\r", "x \r \t\ny\r"}
	alphabet := []byte("ab \t\r\n")
	for range 2000 {
		var b []byte
		n := make([]byte, 1)
		rand.Read(n)
		for range int(n[0]) % 24 {
			c := make([]byte, 1)
			rand.Read(c)
			b = append(b, alphabet[int(c[0])%len(alphabet)])
		}
		cases = append(cases, string(b))
	}
	for _, c := range cases {
		if got, want := coarseDigest([]byte(c)), sha256.Sum256(coarse([]byte(c))); got != want {
			t.Fatalf("%q: digest differs", c)
		}
	}
}
