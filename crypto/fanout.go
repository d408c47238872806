package crypto

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
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
//
// A copy is the shared part (Shared: the MIME text around the armor and
// the encrypted data) and the recipient's own part (Head: its encrypted
// session key packet). Both can be stored apart, the shared part once,
// and the copy made again later by AppendSharedCopy.
type Fanout struct {
	shared []byte
	parts  sharedParts
	heads  [][]byte
}

// sharedMagic starts a shared part; the byte after it is its version.
const sharedMagic = "cvd-fanout\x01"

// sharedParts is a shared part read: the text before and after the
// armor, the encrypted data, its CRC register from zero and the shift of
// a register over len(data) bytes.
type sharedParts struct {
	prefix, suffix, data []byte
	crc0, shift          uint32
}

// NewFanout seals inner to the keys in to, as SealFanout, and returns the
// result for AppendCopy.
func NewFanout(inner []byte, outer textproto.Header, signer *Key, to []*Key, at time.Time) (*Fanout, error) {
	return NewFanoutParts(inner, nil, outer, signer, to, at)
}

// NewFanoutParts is NewFanout for the entity inner followed by rest:
// inner holds the whole header, rest more of the body. The parts are
// sealed as they are, so a large body is never copied to join them.
func NewFanoutParts(inner []byte, rest [][]byte, outer textproto.Header, signer *Key, to []*Key, at time.Time) (*Fanout, error) {
	s, err := newSealerParts(inner, rest, outer, signer, to, at, ObscuredSubject)
	if err != nil {
		return nil, err
	}
	// The shared part is written in place, the encrypted data last, so
	// that it is never copied.
	var buf bytes.Buffer
	buf.Grow(len(sharedMagic) + 2*binary.MaxVarintLen64 + len(s.prefix) + len(s.suffix) + 3 + s.size + 1024)
	buf.WriteString(sharedMagic)
	buf.Write(binary.AppendUvarint(nil, uint64(len(s.prefix))))
	buf.Write(s.prefix)
	buf.Write(binary.AppendUvarint(nil, uint64(len(s.suffix))))
	buf.WriteString(s.suffix)
	crcAt := buf.Len()
	buf.Write([]byte{0, 0, 0})
	sessionKey, err := s.encryptSharedTo(&buf)
	if err != nil {
		return nil, err
	}
	shared := buf.Bytes()
	crc0 := crc24Update(0, shared[crcAt+3:])
	shared[crcAt], shared[crcAt+1], shared[crcAt+2] = byte(crc0>>16), byte(crc0>>8), byte(crc0)
	f := &Fanout{shared: shared, heads: make([][]byte, len(to))}
	if f.parts, err = parseShared(shared); err != nil {
		return nil, err
	}
	errs := make([]error, len(to))
	parallel(len(to), func(i int, _ *bytes.Buffer) {
		var bin bytes.Buffer
		if err := packet.SerializeEncryptedKeyAEAD(&bin, s.encKeys[i], s.cipher, false, sessionKey, s.cfg); err != nil {
			errs[i] = fmt.Errorf("seal: encrypt session key to %s: %w", to[i].Fingerprint(), err)
			return
		}
		f.heads[i] = bin.Bytes()
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return f, nil
}

// Len is the number of copies, one per recipient.
func (f *Fanout) Len() int { return len(f.heads) }

// Size is the length of copy i.
func (f *Fanout) Size(i int) int { return f.parts.size(len(f.heads[i])) }

// Shared is the part common to every copy. It must not be changed.
func (f *Fanout) Shared() []byte { return f.shared }

// Head is recipient i's own part of its copy.
func (f *Fanout) Head(i int) []byte { return f.heads[i] }

// AppendCopy appends the message for recipient i (in the order of to) to
// dst and returns it; dst can be reused for the next copy.
func (f *Fanout) AppendCopy(dst []byte, i int) []byte {
	return f.parts.appendCopy(dst, f.heads[i])
}

// AppendSharedCopy appends to dst the copy made of shared (a Fanout's
// Shared) and head (one of its Head), byte for byte what AppendCopy
// wrote.
func AppendSharedCopy(dst, shared, head []byte) ([]byte, error) {
	p, err := parseShared(shared)
	if err != nil {
		return dst, err
	}
	return p.appendCopy(dst, head), nil
}

// SharedCopySize is the length of the copy AppendSharedCopy makes.
func SharedCopySize(shared []byte, headLen int) (int, error) {
	p, err := parseShared(shared)
	if err != nil {
		return 0, err
	}
	return p.size(headLen), nil
}

// errShared says a shared part is not one Fanout wrote.
var errShared = errors.New("fan-out shared part is malformed")

func parseShared(b []byte) (sharedParts, error) {
	var p sharedParts
	rest, ok := bytes.CutPrefix(b, []byte(sharedMagic))
	if !ok {
		return p, errShared
	}
	var field [2][]byte
	for i := range field {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return p, errShared
		}
		field[i], rest = rest[k:k+int(n)], rest[k+int(n):]
	}
	if len(rest) < 3 {
		return p, errShared
	}
	p.prefix, p.suffix = field[0], field[1]
	p.crc0 = uint32(rest[0])<<16 | uint32(rest[1])<<8 | uint32(rest[2])
	p.data = rest[3:]
	p.shift = xPow8(len(p.data))
	return p, nil
}

const (
	armorBegin = "-----BEGIN PGP MESSAGE-----\r\n\r\n"
	armorEnd   = "=XXXX\r\n-----END PGP MESSAGE-----\r\n"
)

// size is the exact length of the copy with a head of headLen bytes.
func (p *sharedParts) size(headLen int) int {
	b64 := (headLen + len(p.data) + 2) / 3 * 4
	return len(p.prefix) + len(armorBegin) + b64 + (b64+63)/64*2 + len(armorEnd) + len(p.suffix)
}

func (p *sharedParts) appendCopy(dst, head []byte) []byte {
	dst = slices.Grow(dst, p.size(len(head)))
	dst = append(dst, p.prefix...)
	r := min((3-len(head)%3)%3, len(p.data))
	crc := gfMul(crc24(head), p.shift) ^ p.crc0
	aligned := append(append([]byte(nil), head...), p.data[:r]...)
	dst = append(dst, armorBegin...)
	dst = appendEncodedLines(dst, aligned, p.data[r:])
	dst = appendArmorEnd(dst, "PGP MESSAGE", crc)
	return append(dst, p.suffix...)
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
