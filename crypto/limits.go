package crypto

import (
	"errors"
	"fmt"
	"io"
)

// Limits bounds the work Open and Discover do on hostile input. A zero field
// takes its value from DefaultLimits.
type Limits struct {
	// MaxMessageBytes bounds the raw message handed to Open.
	MaxMessageBytes int64
	// MaxHeaderBytes bounds one header section (of the message or a part).
	MaxHeaderBytes int
	// MaxDepth bounds MIME nesting (the top-level entity is depth 1).
	MaxDepth int
	// MaxParts bounds the number of MIME parts in one message.
	MaxParts int
	// MaxPlaintextBytes bounds the output of one decryption (after
	// decompression).
	MaxPlaintextBytes int64
	// MaxExpansion bounds plaintext size as a multiple of the ciphertext
	// size once the plaintext exceeds expansionFloor.
	MaxExpansion int64
}

// expansionFloor is the plaintext size below which MaxExpansion is not
// enforced: short compressible texts legitimately expand a lot.
const expansionFloor = 1 << 20

// DefaultLimits returns the limits used for zero fields.
func DefaultLimits() Limits {
	return Limits{
		MaxMessageBytes:   64 << 20,
		MaxHeaderBytes:    256 << 10,
		MaxDepth:          16,
		MaxParts:          512,
		MaxPlaintextBytes: 64 << 20,
		MaxExpansion:      64,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = d.MaxMessageBytes
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxParts <= 0 {
		l.MaxParts = d.MaxParts
	}
	if l.MaxPlaintextBytes <= 0 {
		l.MaxPlaintextBytes = d.MaxPlaintextBytes
	}
	if l.MaxExpansion <= 0 {
		l.MaxExpansion = d.MaxExpansion
	}
	return l
}

// ErrLimit is matched (errors.Is) by every *LimitError.
var ErrLimit = errors.New("limit exceeded")

// LimitError reports input refused because it exceeds one of the Limits.
type LimitError struct {
	What  string // "message size", "header size", "MIME depth", "MIME parts", "plaintext size", "expansion ratio"
	Limit int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s exceeds limit of %d", e.What, e.Limit)
}

// Is makes errors.Is(err, ErrLimit) true for any *LimitError.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// plaintextCap returns the number of plaintext bytes allowed for a
// ciphertext of n bytes.
func (l Limits) plaintextCap(n int) (int64, *LimitError) {
	ratio := l.MaxExpansion * int64(n)
	if ratio < expansionFloor {
		ratio = expansionFloor
	}
	if ratio < l.MaxPlaintextBytes {
		return ratio, &LimitError{What: "expansion ratio", Limit: l.MaxExpansion}
	}
	return l.MaxPlaintextBytes, &LimitError{What: "plaintext size", Limit: l.MaxPlaintextBytes}
}

// cappedReader fails with err once more than n bytes have been read.
type cappedReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.n < 0 {
		return 0, c.err
	}
	if int64(len(p)) > c.n+1 {
		p = p[:c.n+1]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	if c.n < 0 {
		return 0, c.err
	}
	return n, err
}

// readCapped reads r to EOF, failing with limitErr beyond max bytes.
func readCapped(r io.Reader, max int64, limitErr error) ([]byte, error) {
	return readCappedSized(r, max, limitErr, 0)
}

// readCappedSized is readCapped into a buffer first made for about hint
// bytes: a large message read whole takes its own size, not the up to
// twice as much (and the copies) of a buffer grown by doubling.
func readCappedSized(r io.Reader, limit int64, limitErr error, hint int) ([]byte, error) {
	cr := &cappedReader{r: r, n: limit, err: limitErr}
	if limit > 0 && int64(hint) > limit {
		hint = int(limit)
	}
	b := make([]byte, 0, max(hint, 0)+512)
	for {
		n, err := cr.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// MaxCleartextFor is the largest message whose sealed copy (ASCII-armored
// PGP/MIME: base64 grows 4/3, lines of 64 characters add 2 of 64, and
// up to 64 KiB of headers, the post's header block, key and signature
// packets) still fits in sealed bytes: 0 when sealed is 0 (no limit
// known), 1 when nothing fits.
func MaxCleartextFor(sealed int64) int64 {
	const overhead = 64 << 10
	switch {
	case sealed <= 0:
		return 0
	case sealed <= overhead:
		return 1
	}
	return (sealed - overhead) * 64 * 3 / (66 * 4)
}
