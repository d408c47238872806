package crypto

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
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
		if len(buf) > f.Size(i) {
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
