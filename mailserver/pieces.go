package mailserver

import (
	"bytes"
	"io"
)

// pieceSize is the size of the pieces a message is received in: a large
// message is held once, never copied into a larger buffer as it grows.
const pieceSize = 1 << 20

// readPieces reads r to its end into pieces of pieceSize bytes (the last
// shorter). A small message is read into one buffer that grows up to
// pieceSize.
func readPieces(r io.Reader) ([][]byte, int64, error) {
	var pieces [][]byte
	var total int64
	buf := make([]byte, 0, 4<<10)
	for {
		if len(buf) == cap(buf) {
			if cap(buf) >= pieceSize {
				pieces = append(pieces, buf)
				buf = make([]byte, 0, pieceSize)
			} else {
				grown := make([]byte, len(buf), min(2*cap(buf), pieceSize))
				copy(grown, buf)
				buf = grown
			}
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		total += int64(n)
		if err == io.EOF {
			return append(pieces, buf), total, nil
		}
		if err != nil {
			return nil, total, err
		}
	}
}

// Bytes returns the message as one slice (a copy when it came in pieces).
func (m *Message) Bytes() []byte {
	if len(m.Pieces) == 1 {
		return m.Pieces[0]
	}
	return bytes.Join(m.Pieces, nil)
}

// Reader reads the message from its start.
func (m *Message) Reader() io.Reader {
	rs := make([]io.Reader, len(m.Pieces))
	for i, p := range m.Pieces {
		rs[i] = bytes.NewReader(p)
	}
	return io.MultiReader(rs...)
}
