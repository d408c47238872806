package crypto

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"slices"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/emersion/go-message/textproto"
)

// Fanout is a message signed and encrypted once for several recipients,
// as SealFanout does, whose copies are written one at a time by
// AppendCopy: only the shared encrypted data stays in memory, so a large
// message to many recipients costs about its own size, not one sealed
// copy per recipient.
type Fanout struct {
	prefix []byte
	suffix string
	heads  [][]byte
	data   []byte
	crc0   uint32
	shift  uint32
}

// NewFanout seals inner to the keys in to, as SealFanout, and returns the
// result for AppendCopy.
func NewFanout(inner []byte, outer textproto.Header, signer *Key, to []*Key, at time.Time) (*Fanout, error) {
	s, err := newSealer(inner, outer, signer, to, at, ObscuredSubject)
	if err != nil {
		return nil, err
	}
	f := &Fanout{prefix: s.prefix, suffix: s.suffix, heads: make([][]byte, len(to))}
	sessionKey, data, err := s.encryptShared()
	if err != nil {
		return nil, err
	}
	for i := range to {
		var bin bytes.Buffer
		if err := packet.SerializeEncryptedKeyAEAD(&bin, s.encKeys[i], s.cipher, false, sessionKey, s.cfg); err != nil {
			return nil, fmt.Errorf("seal: encrypt session key to %s: %w", to[i].Fingerprint(), err)
		}
		f.heads[i] = bin.Bytes()
	}
	f.data, f.crc0, f.shift = data, crc24Update(0, data), xPow8(len(data))
	return f, nil
}

// Len is the number of copies, one per recipient.
func (f *Fanout) Len() int { return len(f.heads) }

// Size is the length of copy i.
func (f *Fanout) Size(i int) int {
	return len(f.prefix) + armoredLen(len(f.heads[i])+len(f.data)) + len(f.suffix)
}

// AppendCopy appends the message for recipient i (in the order of to) to
// dst and returns it; dst can be reused for the next copy.
func (f *Fanout) AppendCopy(dst []byte, i int) []byte {
	dst = slices.Grow(dst, f.Size(i))
	dst = append(dst, f.prefix...)
	head := f.heads[i]
	r := min((3-len(head)%3)%3, len(f.data))
	crc := gfMul(crc24(head), f.shift) ^ f.crc0
	aligned := append(append([]byte(nil), head...), f.data[:r]...)
	dst = append(dst, "-----BEGIN PGP MESSAGE-----\r\n\r\n"...)
	dst = appendEncodedLines(dst, aligned, f.data[r:])
	dst = appendArmorEnd(dst, "PGP MESSAGE", crc)
	return append(dst, f.suffix...)
}

// appendEncodedLines appends base64 of a||b in 64-character CRLF lines,
// encoding b in place; len(a) must be a multiple of 3.
func appendEncodedLines(dst, a, b []byte) []byte {
	const width = 64
	enc := base64.StdEncoding
	col := 0
	for len(a) > 0 {
		n := min((width-col)/4*3, len(a))
		dst = enc.AppendEncode(dst, a[:n])
		a = a[n:]
		if col += enc.EncodedLen(n); col == width {
			dst = append(dst, '\r', '\n')
			col = 0
		}
	}
	for len(b) > 0 {
		n := min((width-col)/4*3, len(b))
		dst = enc.AppendEncode(dst, b[:n])
		b = b[n:]
		if col += enc.EncodedLen(n); col == width {
			dst = append(dst, '\r', '\n')
			col = 0
		}
	}
	if col > 0 {
		dst = append(dst, '\r', '\n')
	}
	return dst
}
