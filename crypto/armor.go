package crypto

import (
	"encoding/base64"
	"sync"
)

// crc24Poly is the OpenPGP armor CRC polynomial (RFC 4880 §6.1).
const (
	crc24Poly = 0x1864cfb
	crc24Init = 0xb704ce
)

var crc24Table = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 16
		for j := 0; j < 8; j++ {
			c <<= 1
			if c&0x1000000 != 0 {
				c ^= crc24Poly
			}
		}
		t[i] = c & 0xffffff
	}
	return t
}()

// crc24Update runs the CRC register over data.
func crc24Update(crc uint32, data []byte) uint32 {
	for _, b := range data {
		crc = (crc<<8)&0xffffff ^ crc24Table[byte(crc>>16)^b]
	}
	return crc
}

// crc24 is the OpenPGP armor checksum.
func crc24(data []byte) uint32 { return crc24Update(crc24Init, data) }

// gfMul multiplies a and b as polynomials modulo the CRC polynomial.
func gfMul(a, b uint32) uint32 {
	var r uint32
	for i := 23; i >= 0; i-- {
		r <<= 1
		if r&0x1000000 != 0 {
			r ^= crc24Poly
		}
		if b>>uint(i)&1 != 0 {
			r ^= a
		}
	}
	return r & 0xffffff
}

// xPow8 returns x^(8n) modulo the CRC polynomial: the effect on the
// register of n more bytes.
func xPow8(n int) uint32 {
	result, base := uint32(1), uint32(1<<8)
	for e := uint64(n); e > 0; e >>= 1 {
		if e&1 != 0 {
			result = gfMul(result, base)
		}
		base = gfMul(base, base)
	}
	return result
}

// appendArmor appends an ASCII armored block with CRLF line ends and no
// headers. The CRC24 line is optional since RFC 9580 but GnuPG 2.2 misreads
// the end line without it.
func appendArmor(dst []byte, typ string, data []byte) []byte {
	dst = append(dst, "-----BEGIN "+typ+"-----\r\n\r\n"...)
	crc := crc24(data)
	for len(data) > 0 {
		n := min(48, len(data))
		dst = base64.StdEncoding.AppendEncode(dst, data[:n])
		dst = append(dst, '\r', '\n')
		data = data[n:]
	}
	return appendArmorEnd(dst, typ, crc)
}

func appendArmorEnd(dst []byte, typ string, crc uint32) []byte {
	dst = append(dst, '=')
	dst = base64.StdEncoding.AppendEncode(dst, []byte{byte(crc >> 16), byte(crc >> 8), byte(crc)})
	return append(dst, "\r\n-----END "+typ+"-----\r\n"...)
}

// appendLines appends the concatenation of a and b in 64-character CRLF
// lines.
func appendLines(dst, a, b []byte) []byte {
	const width = 64
	col := 0
	for _, src := range [2][]byte{a, b} {
		for len(src) > 0 {
			n := min(width-col, len(src))
			dst = append(dst, src[:n]...)
			src = src[n:]
			if col += n; col == width {
				dst = append(dst, '\r', '\n')
				col = 0
			}
		}
	}
	if col > 0 {
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// sharedTail is the encrypted data packet common to all copies of a
// fan-out. Its base64 text and CRC contribution are computed once, so a
// copy costs only its own session key packet: base64 of head||tail is
// base64(head)||base64(tail) when len(head) is a multiple of 3, and the
// CRC of head||tail is crc(head)·x^(8·len(tail)) ⊕ crc₀(tail).
type sharedTail struct {
	data  []byte
	crc0  uint32
	shift uint32
	mu    sync.Mutex
	b64   [3][]byte
}

func newSharedTail(data []byte) *sharedTail {
	return &sharedTail{data: data, crc0: crc24Update(0, data), shift: xPow8(len(data))}
}

// encoded returns base64 of data[r:], computing it once per r.
func (s *sharedTail) encoded(r int) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b64[r] == nil {
		s.b64[r] = base64.StdEncoding.AppendEncode(make([]byte, 0, base64.StdEncoding.EncodedLen(len(s.data)-r)), s.data[r:])
	}
	return s.b64[r]
}

// appendArmorShared appends the armored block of head||s.data; scratch
// is reused for the head.
func appendArmorShared(dst []byte, typ string, head []byte, s *sharedTail, scratch []byte) []byte {
	r := (3 - len(head)%3) % 3
	if r > len(s.data) {
		return appendArmor(dst, typ, append(append(scratch[:0], head...), s.data...))
	}
	crc := gfMul(crc24(head), s.shift) ^ s.crc0
	aligned := append(append(scratch[:0], head...), s.data[:r]...)
	dst = append(dst, "-----BEGIN "+typ+"-----\r\n\r\n"...)
	dst = appendLines(dst, base64.StdEncoding.AppendEncode(nil, aligned), s.encoded(r))
	return appendArmorEnd(dst, typ, crc)
}
