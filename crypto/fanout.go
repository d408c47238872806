package crypto

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/emersion/go-message/textproto"
)

// Fanout is a message signed and encrypted once for several recipients,
// as SealFanout does, whose copies are written one at a time by
// AppendCopy: only the shared encrypted data stays in memory, so a large
// message to many recipients costs about its own size, not one sealed
// copy per recipient. Made by NewFanoutSpill, a large one keeps even the
// shared data in a file, not in memory.
//
// A copy is the shared part (Shared: the MIME text around the armor and
// the encrypted data) and the recipient's own part (Head: its encrypted
// session key packet). Both can be stored apart, the shared part once,
// and the copy made again later by AppendSharedCopy or
// NewSharedCopyReader.
type Fanout struct {
	// shared is the whole shared part in memory, or, when the data is in
	// file, the part before the data.
	shared []byte
	file   *os.File
	parts  sharedParts
	heads  [][]byte
}

// sharedMagic starts a shared part; the byte after it is its version.
const sharedMagic = "cvd-fanout\x01"

// sharedParts is a shared part read: the text before and after the
// armor, the encrypted data (nil when it is not in memory) and its
// length, its CRC register from zero and the shift of a register over
// that length.
type sharedParts struct {
	prefix, suffix, data []byte
	dataLen              int64
	crc0, shift          uint32
}

// SpillOver is the size of entity above which NewFanoutSpill writes the
// shared data to a file.
const SpillOver = 1 << 20

// NewFanout seals inner to the keys in to, as SealFanout, and returns the
// result for AppendCopy.
func NewFanout(inner []byte, outer textproto.Header, signer *Key, to []*Key, at time.Time) (*Fanout, error) {
	return NewFanoutSpill(nil, inner, nil, outer, signer, to, at)
}

// NewFanoutParts is NewFanout for the entity inner followed by rest:
// inner holds the whole header, rest more of the body. The parts are
// sealed as they are, so a large body is never copied to join them.
func NewFanoutParts(inner []byte, rest [][]byte, outer textproto.Header, signer *Key, to []*Key, at time.Time) (*Fanout, error) {
	return NewFanoutSpill(nil, inner, rest, outer, signer, to, at)
}

// NewFanoutSpill is NewFanoutParts that, for an entity larger than
// SpillOver, writes the encrypted data to the file spill makes (an empty
// file, best already unlinked) rather than holding it in memory. The
// Fanout owns the file: Close closes it.
func NewFanoutSpill(spill func() (*os.File, error), inner []byte, rest [][]byte, outer textproto.Header, signer *Key, to []*Key, at time.Time) (*Fanout, error) {
	s, err := newSealerParts(inner, rest, outer, signer, to, at, ObscuredSubject)
	if err != nil {
		return nil, err
	}
	// The shared part is written in place, the encrypted data last, so
	// that it is never copied.
	var buf bytes.Buffer
	head := len(sharedMagic) + 2*binary.MaxVarintLen64 + len(s.prefix) + len(s.suffix) + 3
	f := &Fanout{heads: make([][]byte, len(to))}
	if spill != nil && s.size > SpillOver {
		buf.Grow(head)
		if f.file, err = spill(); err != nil {
			return nil, fmt.Errorf("seal: spill file: %w", err)
		}
	} else {
		buf.Grow(head + s.size + 1024)
	}
	buf.WriteString(sharedMagic)
	buf.Write(binary.AppendUvarint(nil, uint64(len(s.prefix))))
	buf.Write(s.prefix)
	buf.Write(binary.AppendUvarint(nil, uint64(len(s.suffix))))
	buf.WriteString(s.suffix)
	crcAt := buf.Len()
	buf.Write([]byte{0, 0, 0})
	var sessionKey []byte
	var crc0 uint32
	if f.file != nil {
		w := &crcWriter{w: bufio.NewWriterSize(f.file, 256<<10)}
		if sessionKey, err = s.encryptSharedTo(w); err == nil {
			err = w.w.(*bufio.Writer).Flush()
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("seal: %w", err)
		}
		crc0 = w.crc
		f.parts.dataLen = w.n
	} else {
		if sessionKey, err = s.encryptSharedTo(&buf); err != nil {
			return nil, err
		}
		crc0 = crc24Update(0, buf.Bytes()[crcAt+3:])
	}
	f.shared = buf.Bytes()
	f.shared[crcAt], f.shared[crcAt+1], f.shared[crcAt+2] = byte(crc0>>16), byte(crc0>>8), byte(crc0)
	if f.file != nil {
		f.parts, err = parseSharedHead(f.shared, f.parts.dataLen)
	} else {
		f.parts, err = parseShared(f.shared)
	}
	if err != nil {
		f.Close()
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
		f.Close()
		return nil, err
	}
	return f, nil
}

// crcWriter counts and checksums what it passes on.
type crcWriter struct {
	w   io.Writer
	crc uint32
	n   int64
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc = crc24Update(c.crc, p[:n])
	c.n += int64(n)
	return n, err
}

// Close lets go of the file holding the shared data, if any.
func (f *Fanout) Close() error {
	if f.file == nil {
		return nil
	}
	err := f.file.Close()
	f.file = nil
	return err
}

// SharedSize is the length of the shared part.
func (f *Fanout) SharedSize() int64 {
	if f.file != nil {
		return int64(len(f.shared)) + f.parts.dataLen
	}
	return int64(len(f.shared))
}

// WriteShared writes the shared part to w, from memory or from its file.
func (f *Fanout) WriteShared(w io.Writer) error {
	if _, err := w.Write(f.shared); err != nil {
		return err
	}
	if f.file == nil {
		return nil
	}
	n, err := io.Copy(w, io.NewSectionReader(f.file, 0, f.parts.dataLen))
	if err == nil && n != f.parts.dataLen {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fmt.Errorf("read spilled shared data: %w", err)
	}
	return nil
}

// Layout is what sizes a copy of f without its data.
func (f *Fanout) Layout() SharedLayout { return SharedLayout{p: f.parts} }

// SharedLayout is the framing of a shared part, enough to size its
// copies.
type SharedLayout struct{ p sharedParts }

// ParseSharedLayout reads the framing of shared, a Fanout's Shared.
func ParseSharedLayout(shared []byte) (SharedLayout, error) {
	p, err := parseShared(shared)
	p.data = nil
	return SharedLayout{p: p}, err
}

// CopySize is the length of the copy whose own part is headLen bytes.
func (l SharedLayout) CopySize(headLen int) int64 { return l.p.size(headLen) }

// Len is the number of copies, one per recipient.
func (f *Fanout) Len() int { return len(f.heads) }

// Size is the length of copy i.
func (f *Fanout) Size(i int) int { return int(f.parts.size(len(f.heads[i]))) }

// Shared is the part common to every copy, read from its file when the
// data is there. It must not be changed.
func (f *Fanout) Shared() []byte {
	if f.file == nil {
		return f.shared
	}
	var b bytes.Buffer
	b.Grow(int(f.SharedSize()))
	if err := f.WriteShared(&b); err != nil {
		return nil
	}
	return b.Bytes()
}

// Head is recipient i's own part of its copy.
func (f *Fanout) Head(i int) []byte { return f.heads[i] }

// AppendCopy appends the message for recipient i (in the order of to) to
// dst and returns it; dst can be reused for the next copy.
func (f *Fanout) AppendCopy(dst []byte, i int) []byte {
	if f.file != nil {
		p, err := parseShared(f.Shared())
		if err != nil {
			return dst
		}
		return p.appendCopy(dst, f.heads[i])
	}
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
	return int(p.size(headLen)), nil
}

// errShared says a shared part is not one Fanout wrote.
var errShared = errors.New("fan-out shared part is malformed")

func parseShared(b []byte) (sharedParts, error) {
	p, n, err := parseSharedFraming(b)
	if err != nil {
		return p, err
	}
	p.data = b[n:]
	p.dataLen = int64(len(p.data))
	p.shift = xPow8(len(p.data))
	return p, nil
}

// parseSharedHead reads the framing of a shared part whose data, of
// dataLen bytes, is not in head.
func parseSharedHead(head []byte, dataLen int64) (sharedParts, error) {
	p, n, err := parseSharedFraming(head)
	if err != nil || n != len(head) {
		return p, errShared
	}
	p.dataLen = dataLen
	p.shift = xPow8(int(dataLen))
	return p, nil
}

// parseSharedFraming reads the framing before the data and returns its
// length.
func parseSharedFraming(b []byte) (sharedParts, int, error) {
	var p sharedParts
	rest, ok := bytes.CutPrefix(b, []byte(sharedMagic))
	if !ok {
		return p, 0, errShared
	}
	var field [2][]byte
	for i := range field {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return p, 0, errShared
		}
		field[i], rest = rest[k:k+int(n)], rest[k+int(n):]
	}
	if len(rest) < 3 {
		return p, 0, errShared
	}
	p.prefix, p.suffix = field[0], field[1]
	p.crc0 = uint32(rest[0])<<16 | uint32(rest[1])<<8 | uint32(rest[2])
	return p, len(b) - len(rest) + 3, nil
}

const (
	armorBegin = "-----BEGIN PGP MESSAGE-----\r\n\r\n"
	armorEnd   = "=XXXX\r\n-----END PGP MESSAGE-----\r\n"
)

// size is the exact length of the copy with a head of headLen bytes.
func (p *sharedParts) size(headLen int) int64 {
	b64 := (int64(headLen) + p.dataLen + 2) / 3 * 4
	return int64(len(p.prefix)+len(armorBegin)) + b64 + (b64+63)/64*2 + int64(len(armorEnd)+len(p.suffix))
}

func (p *sharedParts) appendCopy(dst, head []byte) []byte {
	dst = slices.Grow(dst, int(p.size(len(head))))
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

// NewSharedCopyReader reads the copy AppendSharedCopy makes of a shared
// part, read from shared (size bytes), and head, without holding the
// shared part: the copy is made as it is read. It returns the copy's
// length. A shared part that is malformed, or shorter or longer than
// size, is an error, at once or from Read.
func NewSharedCopyReader(shared io.Reader, size int64, head []byte) (io.Reader, int64, error) {
	br := bufio.NewReaderSize(shared, 64<<10)
	framing := int64(len(sharedMagic))
	magic := make([]byte, len(sharedMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != sharedMagic {
		return nil, 0, errShared
	}
	var field [2][]byte
	for i := range field {
		cr := &countingByteReader{r: br}
		n, err := binary.ReadUvarint(cr)
		if err != nil || n > uint64(size) {
			return nil, 0, errShared
		}
		framing += cr.n + int64(n)
		field[i] = make([]byte, n)
		if _, err := io.ReadFull(br, field[i]); err != nil {
			return nil, 0, errShared
		}
	}
	var crc [3]byte
	if _, err := io.ReadFull(br, crc[:]); err != nil {
		return nil, 0, errShared
	}
	framing += 3
	if framing > size {
		return nil, 0, errShared
	}
	p := sharedParts{prefix: field[0], suffix: field[1], dataLen: size - framing,
		crc0: uint32(crc[0])<<16 | uint32(crc[1])<<8 | uint32(crc[2])}
	p.shift = xPow8(int(p.dataLen))
	c := &copyReader{
		src:  io.MultiReader(bytes.NewReader(head), &exactReader{r: br, left: p.dataLen}),
		out:  append(append([]byte(nil), p.prefix...), armorBegin...),
		tail: append(appendArmorEnd(nil, "PGP MESSAGE", gfMul(crc24(head), p.shift)^p.crc0), p.suffix...),
	}
	return c, p.size(len(head)), nil
}

// countingByteReader counts the bytes read through it.
type countingByteReader struct {
	r io.ByteReader
	n int64
}

func (c *countingByteReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// exactReader reads exactly left bytes from r: fewer or more is an
// error.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left == 0 {
		var one [1]byte
		if n, _ := io.ReadFull(e.r, one[:]); n > 0 {
			return 0, fmt.Errorf("%w: longer than its size", errShared)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		err = fmt.Errorf("%w: %d bytes short", errShared, e.left)
	} else if err == io.EOF {
		err = nil
	}
	return n, err
}

// copyReader armors src (a head and the shared data) in 64-character
// lines between out (the text before it) and tail.
type copyReader struct {
	src       io.Reader
	in        []byte
	out, tail []byte
	off       int
	done      bool
	err       error
}

// copyChunk is how much of src a copyReader encodes at a time: a whole
// number of 48-byte lines.
const copyChunk = 48 << 10

func (c *copyReader) Read(p []byte) (int, error) {
	for c.off == len(c.out) {
		if c.err != nil {
			return 0, c.err
		}
		if c.done {
			return 0, io.EOF
		}
		c.fill()
	}
	n := copy(p, c.out[c.off:])
	c.off += n
	return n, nil
}

func (c *copyReader) fill() {
	if c.in == nil {
		c.in = make([]byte, copyChunk)
	}
	n, err := io.ReadFull(c.src, c.in)
	c.out, c.off = c.out[:0], 0
	if cap(c.out) < copyChunk/3*4+copyChunk/24+len(c.tail) {
		c.out = make([]byte, 0, copyChunk/3*4+copyChunk/24+len(c.tail))
	}
	enc := base64.StdEncoding
	for in := c.in[:n]; len(in) > 0; {
		k := min(len(in), 48)
		c.out = enc.AppendEncode(c.out, in[:k])
		c.out = append(c.out, '\r', '\n')
		in = in[k:]
	}
	switch err {
	case nil:
	case io.EOF, io.ErrUnexpectedEOF:
		c.out = append(c.out, c.tail...)
		c.done = true
	default:
		c.err = err
	}
}
