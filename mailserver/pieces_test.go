package mailserver

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// TestReadPieces reads messages around the piece size, in reads of odd
// sizes, back byte for byte in pieces of at most pieceSize, and passes a
// transfer error on.
func TestReadPieces(t *testing.T) {
	for _, n := range []int{0, 1, 4 << 10, pieceSize - 1, pieceSize, pieceSize + 1, 3*pieceSize + 12345} {
		msg := make([]byte, n)
		rand.Read(msg)
		for name, r := range map[string]io.Reader{
			"whole": bytes.NewReader(msg),
			"half":  iotest.HalfReader(bytes.NewReader(msg)),
			"eof":   iotest.DataErrReader(bytes.NewReader(msg)),
		} {
			pieces, size, err := readPieces(r)
			if err != nil || size != int64(n) {
				t.Fatalf("%d bytes (%s): size %d, %v", n, name, size, err)
			}
			for i, p := range pieces {
				if len(p) > pieceSize || i < len(pieces)-1 && len(p) != pieceSize {
					t.Fatalf("%d bytes (%s): piece %d of %d has %d bytes", n, name, i, len(pieces), len(p))
				}
			}
			m := &Message{Pieces: pieces, Size: size}
			if !bytes.Equal(m.Bytes(), msg) {
				t.Fatalf("%d bytes (%s): read back differs", n, name)
			}
			if back, _ := io.ReadAll(m.Reader()); !bytes.Equal(back, msg) {
				t.Fatalf("%d bytes (%s): Reader differs", n, name)
			}
		}
	}
	broken := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(make([]byte, pieceSize+10)), iotest.ErrReader(broken))
	if _, _, err := readPieces(r); !errors.Is(err, broken) {
		t.Errorf("transfer error: %v, want %v", err, broken)
	}
}
