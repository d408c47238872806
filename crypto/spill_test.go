package crypto

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

// A copy read from NewSharedCopyReader, however its source and its
// reader cut the reads, is byte for byte the copy AppendSharedCopy makes;
// a shared part cut short, too long or altered in its framing is an
// error, never a copy.
func TestSharedCopyReader(t *testing.T) {
	list := ed(t, "list")
	to := []*Key{ed(t, "alice").Public(), testKey(t, "erin", KindRSA3072).Public()}
	for _, size := range []int{0, 1, 2, 47, 48, 49, 4099, 200_000} {
		body := make([]byte, size*3/4)
		rand.Read(body)
		inner := []byte("Content-Type: text/plain\r\n\r\n" + base64.StdEncoding.EncodeToString(body) + "\r\n")
		f, err := NewFanout(inner, outerHeader("security+2026-001@example.org"), list, to, testNow)
		if err != nil {
			t.Fatal(err)
		}
		shared := f.Shared()
		for i := range to {
			want, err := AppendSharedCopy(nil, shared, f.Head(i))
			if err != nil {
				t.Fatal(err)
			}
			for name, wrap := range map[string]func(io.Reader) io.Reader{
				"whole":  func(r io.Reader) io.Reader { return r },
				"bytes":  iotest.OneByteReader,
				"halves": iotest.HalfReader,
			} {
				r, n, err := NewSharedCopyReader(wrap(bytes.NewReader(shared)), int64(len(shared)), f.Head(i))
				if err != nil {
					t.Fatalf("size %d copy %d %s: %v", size, i, name, err)
				}
				got, err := io.ReadAll(wrap(r))
				if err != nil {
					t.Fatalf("size %d copy %d %s: read: %v", size, i, name, err)
				}
				if n != int64(len(want)) || !bytes.Equal(got, want) {
					t.Fatalf("size %d copy %d %s: %d bytes (said %d), want %d equal bytes", size, i, name, len(got), n, len(want))
				}
			}
		}
		if size != 4099 {
			continue
		}
		bad := map[string]struct {
			shared []byte
			size   int64
		}{
			"short":    {shared[:len(shared)-1], int64(len(shared))},
			"long":     {append(bytes.Clone(shared), 'x'), int64(len(shared))},
			"size":     {shared, int64(len(shared)) + 1},
			"magic":    {append([]byte("cvd-fanout\x02"), shared[len(sharedMagic):]...), int64(len(shared))},
			"framing":  {shared[:len(sharedMagic)+1], int64(len(sharedMagic) + 1)},
			"nothing":  {nil, 0},
			"huge len": {append([]byte(sharedMagic), 0xff, 0xff, 0xff, 0xff, 0x0f), int64(len(shared))},
		}
		for name, c := range bad {
			r, _, err := NewSharedCopyReader(bytes.NewReader(c.shared), c.size, f.Head(0))
			if err == nil {
				_, err = io.ReadAll(r)
			}
			if !errors.Is(err, errShared) {
				t.Errorf("%s: %v, want a malformed shared part", name, err)
			}
		}
	}
}

// A large fan-out spilled to a file holds only the framing in memory; its
// copies, written or read as a stream, open for their recipients with the
// list's good signature and have the size its layout gives.
func TestFanoutSpill(t *testing.T) {
	list, alice, bob := ed(t, "list"), ed(t, "alice"), testKey(t, "bob", KindRSA3072)
	body := make([]byte, SpillOver)
	rand.Read(body)
	enc := base64.StdEncoding.EncodeToString(body)
	var sb strings.Builder
	for len(enc) > 76 {
		sb.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	sb.WriteString(enc + "\r\n")
	inner := []byte("Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	dir := t.TempDir()
	made := 0
	spill := func() (*os.File, error) {
		made++
		f, err := os.CreateTemp(dir, "spill")
		if err != nil {
			return nil, err
		}
		return f, os.Remove(f.Name())
	}
	f, err := NewFanoutSpill(spill, inner, [][]byte{[]byte(sb.String())}, outerHeader("security+2026-001@example.org"), list, []*Key{alice.Public(), bob.Public()}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if made != 1 || f.file == nil || len(f.shared) > 4096 {
		t.Fatalf("spill files %d, %d bytes of the shared part in memory", made, len(f.shared))
	}
	if st, err := f.file.Stat(); err != nil || st.Size() < SpillOver {
		t.Fatalf("spill file: %v, %v", st, err)
	}
	var shared bytes.Buffer
	if err := f.WriteShared(&shared); err != nil {
		t.Fatal(err)
	}
	if int64(shared.Len()) != f.SharedSize() {
		t.Fatalf("WriteShared wrote %d bytes, SharedSize %d", shared.Len(), f.SharedSize())
	}
	for i, k := range []*Key{alice, bob} {
		r, n, err := NewSharedCopyReader(bytes.NewReader(shared.Bytes()), int64(shared.Len()), f.Head(i))
		if err != nil {
			t.Fatal(err)
		}
		msg, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(len(msg)) || f.Layout().CopySize(len(f.Head(i))) != n || !bytes.Equal(msg, f.AppendCopy(nil, i)) {
			t.Fatalf("copy %d: %d bytes, reader said %d, layout %d", i, len(msg), n, f.Layout().CopySize(len(f.Head(i))))
		}
		o, err := Open(msg, []*Key{k}, []*Key{list.Public()}, testNow, Limits{MaxPlaintextBytes: 4 << 20})
		if err != nil {
			t.Fatalf("open copy %d: %v", i, err)
		}
		if o.Signature != Good || !bytes.Contains(o.Entity, []byte(sb.String()[:1000])) {
			t.Fatalf("copy %d: signature %v", i, o.Signature)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left in the spill folder: %v", entries)
	}

	// A small entity stays in memory.
	small, err := NewFanoutSpill(func() (*os.File, error) { made++; return nil, errors.New("no") }, []byte(innerEntity), nil, outerHeader("security+2026-001@example.org"), list, []*Key{alice.Public()}, testNow)
	if err != nil || made != 1 || small.file != nil {
		t.Fatalf("small entity: %v, spill files %d", err, made)
	}
}

// FuzzSharedCopyReader: whatever the stored shared part, the reader never
// panics, and when AppendSharedCopy accepts the part the reader gives the
// same copy.
func FuzzSharedCopyReader(f *testing.F) {
	list := ed(f, "list")
	fo, err := NewFanout([]byte(innerEntity), outerHeader("security+2026-001@example.org"), list, []*Key{ed(f, "alice").Public()}, testNow)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fo.Shared(), fo.Head(0), int64(0))
	f.Add([]byte(sharedMagic+"\x00\x00abc"), []byte{1, 2}, int64(1))
	// A length in a varint of more bytes than it needs.
	f.Add([]byte(sharedMagic+"\x00\x80\x00000"), []byte("0"), int64(-192))
	f.Fuzz(func(t *testing.T, shared, head []byte, delta int64) {
		delta %= 4
		r, n, err := NewSharedCopyReader(bytes.NewReader(shared), int64(len(shared))+delta, head)
		var got []byte
		if err == nil {
			got, err = io.ReadAll(r)
		}
		want, werr := AppendSharedCopy(nil, shared, head)
		if delta == 0 && werr == nil {
			if err != nil || !bytes.Equal(got, want) || n != int64(len(want)) {
				t.Fatalf("reader: %v, %d bytes (said %d); AppendSharedCopy: %d bytes", err, len(got), n, len(want))
			}
		} else if err == nil && delta != 0 {
			t.Fatalf("a shared part of %d bytes read as %d bytes", len(shared), int64(len(shared))+delta)
		}
	})
}
