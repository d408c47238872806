package mailserver

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("connection reset") }

// A large message dot-stuffed in pieces written out as they fill, the
// DKIM fields apart from the message, reaches the wire byte for byte as
// the message stuffed whole; a failing write is reported.
func TestStuffLinesInPieces(t *testing.T) {
	var msg strings.Builder
	for i := 0; msg.Len() < 3*stuffedPiece; i++ {
		switch i % 5 {
		case 0:
			msg.WriteString(".leading dot\r\n")
		case 1:
			msg.WriteString("bare lf line\n")
		default:
			msg.WriteString(strings.Repeat("x", i%97) + "\r\n")
		}
	}
	msg.WriteString("no final newline")
	dkim := []byte("DKIM-Signature: v=1; a=ed25519-sha256; d=example.org\r\n")
	raw := []byte(msg.String())

	var whole bytes.Buffer
	dotStuff(&whole, append(append([]byte(nil), dkim...), raw...))

	var wire, b bytes.Buffer
	size := int64(len(dkim) + len(raw))
	if err := stuffLines(&wire, &b, dkim, size); err != nil {
		t.Fatal(err)
	}
	if err := stuffLines(&wire, &b, raw, size); err != nil {
		t.Fatal(err)
	}
	b.WriteString(".\r\n")
	if wire.Len() == 0 || b.Cap() > 2*stuffedPiece {
		t.Fatalf("%d bytes written early, buffer of %d bytes: the message was held whole", wire.Len(), b.Cap())
	}
	wire.Write(b.Bytes())
	if !bytes.Equal(wire.Bytes(), whole.Bytes()) {
		t.Fatal("message stuffed in pieces differs from the message stuffed whole")
	}
	b.Reset()
	if err := stuffLines(failWriter{}, &b, raw, size); err == nil {
		t.Fatal("failed write not reported")
	}
}
