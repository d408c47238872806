package mailserver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// pipeline runs transactions with SMTP command pipelining (RFC 2920) on
// a session go-smtp's client opened (greeting, EHLO, TLS, AUTH): MAIL,
// the RCPTs and DATA go out in one write, and the message with its final
// dot in another, together with the next message's MAIL, RCPTs and DATA
// when one waits (message content may start a group, section 3.1). A
// message then costs one round trip. The client keeps the session for
// RSET and QUIT, used only when no reply is left unread.
type pipeline struct {
	c       *smtp.Client
	conn    net.Conn
	r       *textproto.Reader
	timeout time.Duration
	ext8bit bool
	extSize bool
	buf     bytes.Buffer
	// pending is the job whose MAIL, RCPTs and DATA were sent and whose
	// replies are not read yet.
	pending *job
}

// newPipeline returns nil when the server does not offer PIPELINING.
func newPipeline(c *smtp.Client, conn net.Conn, timeout time.Duration) *pipeline {
	if ok, _ := c.Extension("PIPELINING"); !ok || conn == nil {
		return nil
	}
	p := &pipeline{c: c, conn: conn, r: textproto.NewReader(bufio.NewReader(conn)), timeout: timeout}
	p.ext8bit, _ = c.Extension("8BITMIME")
	p.extSize, _ = c.Extension("SIZE")
	return p
}

// reply reads one reply; a reply with another code than want is an
// *smtp.SMTPError, as go-smtp's client returns.
func (p *pipeline) reply(want int) (string, error) {
	_, msg, err := p.r.ReadResponse(want)
	var pe *textproto.Error
	if errors.As(err, &pe) {
		return "", smtpError(pe)
	}
	return msg, err
}

// smtpError turns a reply into an *smtp.SMTPError, with its enhanced
// status code (RFC 3463) split off the text.
func smtpError(pe *textproto.Error) *smtp.SMTPError {
	se := &smtp.SMTPError{Code: pe.Code, Message: pe.Msg}
	first, rest, ok := strings.Cut(pe.Msg, " ")
	if !ok {
		return se
	}
	parts := strings.Split(first, ".")
	if len(parts) != 3 {
		return se
	}
	var code smtp.EnhancedCode
	for i, s := range parts {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 999 {
			return se
		}
		code[i] = n
	}
	se.EnhancedCode = code
	se.Message = strings.ReplaceAll(rest, "\n"+first+" ", "\n")
	return se
}

// appendEnvelope adds MAIL, the RCPTs and DATA of j to p.buf, or returns
// the statuses of a job whose addresses cannot be sent.
func (p *pipeline) appendEnvelope(host, from string, opts *smtp.MailOptions, j *job) []rcptStatus {
	n := len(j.rcpts)
	if strings.ContainsAny(from, "\r\n") {
		return all(n, rcptStatus{perm: true, reply: host + ": return path contains CR or LF"})
	}
	for _, r := range j.rcpts {
		if strings.ContainsAny(r.Addr, "\r\n") {
			return all(n, rcptStatus{perm: true, reply: host + ": recipient contains CR or LF"})
		}
	}
	p.buf.WriteString("MAIL FROM:<")
	p.buf.WriteString(from)
	p.buf.WriteByte('>')
	if p.ext8bit {
		p.buf.WriteString(" BODY=8BITMIME")
	}
	if p.extSize && opts.Size != 0 {
		p.buf.WriteString(" SIZE=")
		p.buf.WriteString(strconv.FormatInt(opts.Size, 10))
	}
	if opts.UTF8 {
		p.buf.WriteString(" SMTPUTF8")
	}
	p.buf.WriteString("\r\n")
	for _, r := range j.rcpts {
		p.buf.WriteString("RCPT TO:<")
		p.buf.WriteString(r.Addr)
		p.buf.WriteString(">\r\n")
	}
	p.buf.WriteString("DATA\r\n")
	return nil
}

// transaction delivers j's message to its recipients; the statuses and
// broken mean what they mean for smtpSender.transaction. from and opts
// are j's envelope, unused when j is pending (sent already). When the
// message is about to be sent, more (if not nil) may give the next job
// and its envelope, which then go out with the message and become
// pending: that job must be the next one given to transaction.
func (p *pipeline) transaction(ctx context.Context, host, from string, opts *smtp.MailOptions, j *job, more func() (*job, string, *smtp.MailOptions)) (out []rcptStatus, broken bool) {
	n := len(j.rcpts)
	p.conn.SetDeadline(time.Now().Add(p.timeout))
	defer p.conn.SetDeadline(time.Time{})
	switch p.pending {
	case j:
		p.pending = nil
	case nil:
		p.buf.Reset()
		if st := p.appendEnvelope(host, from, opts, j); st != nil {
			return st, false
		}
		if _, err := p.conn.Write(p.buf.Bytes()); err != nil {
			st, _ := statusOf(host, err)
			return all(n, st), true
		}
	default:
		// Another job's replies come first: the session is out of step.
		return all(n, rcptStatus{reply: host + ": transaction out of order"}), true
	}
	out = make([]rcptStatus, n)
	// Every reply is read, so the session stays in step whatever fails.
	_, mailErr := p.reply(250)
	var accepted []int
	var lost error // a reply that ends the session
	if mailErr != nil {
		if _, broken := statusOf(host, mailErr); broken {
			lost = mailErr
		}
	}
	for i := range j.rcpts {
		if lost != nil {
			break
		}
		_, err := p.reply(250)
		switch {
		case err == nil && mailErr == nil:
			accepted = append(accepted, i)
		case err != nil:
			st, broken := statusOf(host, err)
			out[i] = st
			if broken {
				lost = err
			}
		}
	}
	var dataErr error
	if lost == nil {
		_, dataErr = p.reply(354)
		if dataErr != nil {
			if _, broken := statusOf(host, dataErr); broken {
				lost = dataErr
			}
		}
	}
	if lost != nil {
		st, _ := statusOf(host, lost)
		return all(n, st), true
	}
	if mailErr != nil {
		st, _ := statusOf(host, mailErr)
		// DATA should have been refused; if not, the session is lost.
		return all(n, st), dataErr == nil || p.c.Reset() != nil
	}
	if len(accepted) == 0 {
		return out, dataErr == nil || p.c.Reset() != nil
	}
	fail := func(err error) ([]rcptStatus, bool) {
		st, broken := statusOf(host, err)
		for _, k := range accepted {
			out[k] = st
		}
		// With a transaction pending, the final reply ended this one;
		// RSET would take the pending transaction's replies.
		if !broken && p.pending == nil {
			broken = p.c.Reset() != nil
		}
		return out, broken
	}
	if dataErr != nil {
		return fail(dataErr)
	}

	p.buf.Reset()
	p.conn.SetDeadline(time.Now().Add(p.timeout))
	st := newStuffer(deadlineWriter{p.conn, p.timeout}, &p.buf, j.batch.wireLen())
	err := st.write(j.batch.dkim)
	if err == nil {
		err = j.batch.each(ctx, st.write)
	}
	if err != nil {
		// Without its final dot the server takes nothing of the message;
		// the connection is dropped.
		st, _ := statusOf(host, err)
		for _, k := range accepted {
			out[k] = st
		}
		return out, true
	}
	st.end()
	p.buf.WriteString(".\r\n")
	if more != nil {
		if nj, nfrom, nopts := more(); nj != nil {
			mark := p.buf.Len()
			if p.appendEnvelope(host, nfrom, nopts, nj) == nil {
				p.pending = nj
			} else {
				p.buf.Truncate(mark)
			}
		}
	}
	p.conn.SetDeadline(time.Now().Add(p.timeout))
	if _, err := p.conn.Write(p.buf.Bytes()); err != nil {
		st, _ := statusOf(host, err)
		for _, k := range accepted {
			out[k] = st
		}
		return out, true
	}
	msg, err := p.reply(250)
	if err != nil {
		return fail(err)
	}
	reply := host + ": 250 " + strings.ReplaceAll(msg, "\n", " ")
	for _, k := range accepted {
		out[k] = rcptStatus{ok: true, reply: reply}
	}
	return out, false
}

// dotStuff appends raw as DATA content (RFC 5321 4.5.2): CRLF line
// endings, a dot doubled at the start of a line, and the final dot line.
func dotStuff(b *bytes.Buffer, raw []byte) {
	stuffLines(nil, b, raw, int64(len(raw)))
	b.WriteString(".\r\n")
}

// deadlineWriter gives each write to conn a deadline of its own, so that
// a large message on a slow link is timed piece by piece, not as a whole
// (RFC 5321 4.5.3.2.5: a data block timeout).
type deadlineWriter struct {
	conn    net.Conn
	timeout time.Duration
}

func (d deadlineWriter) Write(p []byte) (int, error) {
	d.conn.SetDeadline(time.Now().Add(d.timeout))
	return d.conn.Write(p)
}

// stuffedPiece is the most of a message stuffLines holds before writing
// it out.
const stuffedPiece = 256 << 10

// stuffLines appends raw, one part of a message of size bytes that ends
// at a line end or where the message does, as DATA content without its
// end; see stuffer.
func stuffLines(w io.Writer, b *bytes.Buffer, raw []byte, size int64) error {
	if w == nil {
		b.Grow(len(raw) + len(raw)/64 + 5)
	}
	s := newStuffer(w, b, size)
	if err := s.write(raw); err != nil {
		return err
	}
	s.end()
	return nil
}

// stuffer appends a message of size bytes, given in pieces cut anywhere,
// to b as DATA content without its end: CRLF line endings, a dot doubled
// at the start of a line. It writes b to w (when not nil) whenever it
// holds stuffedPiece bytes, so that a large message is never held twice.
// A message smaller than stuffedPiece is never written here: it goes out
// in one write with what follows it.
type stuffer struct {
	w   io.Writer
	b   *bytes.Buffer
	mid bool // the last piece ended inside a line
	cr  bool // and with a CR, held back: it may end the line
}

func newStuffer(w io.Writer, b *bytes.Buffer, size int64) *stuffer {
	if w != nil {
		b.Grow(int(min(size+size/64, stuffedPiece+1024)) + 5)
	}
	return &stuffer{w: w, b: b}
}

// write appends the next piece.
func (s *stuffer) write(p []byte) error {
	for len(p) > 0 {
		if s.w != nil && s.b.Len() >= stuffedPiece {
			if _, err := s.w.Write(s.b.Bytes()); err != nil {
				return err
			}
			s.b.Reset()
		}
		if s.cr {
			s.cr = false
			if p[0] != '\n' {
				s.b.WriteByte('\r')
			}
		}
		if !s.mid && p[0] == '.' {
			s.b.WriteByte('.')
		}
		line, rest, found := bytes.Cut(p, []byte("\n"))
		if !found {
			if line[len(line)-1] == '\r' {
				line, s.cr = line[:len(line)-1], true
			}
			s.b.Write(line)
			s.mid = true
			return nil
		}
		s.b.Write(bytes.TrimSuffix(line, []byte("\r")))
		s.b.WriteString("\r\n")
		s.mid = false
		p = rest
	}
	return nil
}

// end ends a last line that has no line end.
func (s *stuffer) end() {
	if s.mid {
		s.b.WriteString("\r\n")
	}
	s.mid, s.cr = false, false
}
