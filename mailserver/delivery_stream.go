package mailserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
)

// readPiece is the size of the pieces a message read through
// OutboundBatch.Open is handed on in.
const readPiece = 256 << 10

// readError is a failure to read a queued message from storage. The
// message is then not sent at all: a transaction under way is abandoned
// before its end.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

func isReadError(err error) bool {
	var re *readError
	return errors.As(err, &re)
}

// streamed reports whether the message is read through Open.
func (b *OutboundBatch) streamed() bool { return b.Raw == nil && b.Open != nil }

// msgLen is the message's length without its DKIM fields.
func (b *OutboundBatch) msgLen() int64 {
	if b.streamed() {
		return b.Size
	}
	return int64(len(b.Raw))
}

// each calls fn with the message: Raw at once, or what Open reads, in
// pieces of readPiece bytes cut anywhere, whatever the sizes of the
// reads. A reader that fails, ends before Size bytes or goes on after
// them gives a *readError: what was handed on is then not the message.
func (b *OutboundBatch) each(ctx context.Context, fn func([]byte) error) error {
	if !b.streamed() {
		if len(b.Raw) == 0 {
			return nil
		}
		return fn(b.Raw)
	}
	rd, err := b.Open(ctx)
	if err != nil {
		return &readError{fmt.Errorf("open message %d: %w", b.MessageID, err)}
	}
	defer rd.Close()
	buf := make([]byte, readPiece)
	var total int64
	for {
		n, err := io.ReadFull(rd, buf)
		total += int64(n)
		if total > b.Size {
			return &readError{fmt.Errorf("read message %d: longer than its %d bytes", b.MessageID, b.Size)}
		}
		switch err {
		case nil:
			if err := fn(buf); err != nil {
				return err
			}
			continue
		case io.EOF, io.ErrUnexpectedEOF:
		default:
			return &readError{fmt.Errorf("read message %d: %w", b.MessageID, err)}
		}
		if total != b.Size {
			return &readError{fmt.Errorf("read message %d: %d of its %d bytes", b.MessageID, total, b.Size)}
		}
		if n == 0 {
			return nil
		}
		return fn(buf[:n])
	}
}

// headScan finds out, from a message given piece by piece, whether its
// header (up to the first CRLF CRLF, or the whole message without one)
// holds a byte outside ASCII, as needsSMTPUTF8 does for a whole message.
type headScan struct {
	tail []byte // the last bytes of the pieces so far
	done bool   // the answer is known
	utf8 bool
}

var crlfcrlf = []byte("\r\n\r\n")

// write scans the next piece and reports whether more is needed.
func (h *headScan) write(p []byte) bool {
	if h.done || len(p) == 0 {
		return !h.done
	}
	// The header's end may straddle two pieces.
	edge := append(append(make([]byte, 0, 6), h.tail...), p[:min(3, len(p))]...)
	if i := bytes.Index(edge, crlfcrlf); i >= 0 && i < len(h.tail) {
		h.done = true
		return false
	}
	head := p
	if i := bytes.Index(p, crlfcrlf); i >= 0 {
		head, h.done = p[:i], true
	}
	if !asciiBytes(head) {
		h.utf8, h.done = true, true
	}
	h.tail = append(h.tail, p[max(0, len(p)-3):]...)
	h.tail = h.tail[max(0, len(h.tail)-3):]
	return !h.done
}

func asciiBytes(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// errHeadRead ends a read once the header was scanned.
var errHeadRead = errors.New("header read")

// prepareStreamed reads a message given through Open once before its
// first transaction: it signs it (when DKIM is on) and scans its header,
// in one pass, or reads only the header without DKIM. A read error is
// returned: the message is then not sent. A signing error is only
// logged: the message goes out unsigned.
func (w *DeliveryWorker) prepareStreamed(b *OutboundBatch) error {
	var head headScan
	scanHead := func() error {
		head = headScan{}
		err := b.each(w.jobCtx, func(p []byte) error {
			if !head.write(p) {
				return errHeadRead
			}
			return nil
		})
		if err != nil && err != errHeadRead {
			return err
		}
		b.utf8Head = head.utf8
		return nil
	}
	if w.opts.DKIM == nil {
		return scanHead()
	}
	fields, err := w.opts.DKIM.FieldsFrom(func(write func([]byte) error) error {
		return b.each(w.jobCtx, func(p []byte) error {
			head.write(p)
			return write(p)
		})
	})
	if isReadError(err) {
		return err
	}
	if err != nil {
		w.log.Error("dkim sign", "msg", b.MessageID, "err", err)
		return scanHead()
	}
	b.dkim, b.utf8Head = fields, head.utf8
	return nil
}
