// Package mailserver speaks the mail protocols: SMTP intake, TLS and
// connection limits. It knows nothing of incidents or PGP; the rest of cvd
// plugs in through the small interfaces defined here.
package mailserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/metrics"
)

// Recipient is the verdict on a RCPT TO address.
type Recipient int

const (
	// RecipientLocal is an address cvd accepts mail for.
	RecipientLocal Recipient = iota
	// RecipientUnknown is in cvd's domain but names nothing (550 5.1.1).
	RecipientUnknown
	// RecipientForeign is not in cvd's domain: relaying is refused (550 5.7.1).
	RecipientForeign
)

// Message is a message received over SMTP.
type Message struct {
	ReceivedAt time.Time
	RemoteAddr string
	Helo       string
	From       string // "" for the null sender
	To         []string
	TLS        bool
	// Pieces are exactly the bytes received after DATA, in order, in
	// pieces of at most 1 MiB; Size is their length.
	Pieces [][]byte
	Size   int64
}

// Intake is what the SMTP server needs from the rest of cvd.
type Intake interface {
	// CheckRecipient classifies an address given in RCPT TO.
	CheckRecipient(addr string) Recipient
	// Accept stores msg durably and returns its spool ID. The client is told
	// 250 only after Accept returned nil.
	Accept(ctx context.Context, msg *Message) (string, error)
}

// SMTPOptions configures an SMTPServer.
type SMTPOptions struct {
	Hostname            string
	MaxMessageBytes     int64
	MaxRecipients       int
	MaxConnections      int
	MaxConnectionsPerIP int
	ReadTimeout         time.Duration
	WriteTimeout        time.Duration
	// Forwardable, when set, is the largest message cvd can pass on now
	// (the relay's limit less the growth of encryption); larger messages
	// get 552 5.3.4 at MAIL (SIZE=) or after DATA. A result of 0 or above
	// MaxMessageBytes leaves MaxMessageBytes.
	Forwardable func() int64
	// TLSConfig enables STARTTLS when set.
	TLSConfig *tls.Config
	Logger    *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// SMTPServer receives mail for cvd's addresses.
type SMTPServer struct {
	intake Intake
	opts   SMTPOptions
	log    *slog.Logger
	srv    *smtp.Server
	conns  *connTracker
	nextID atomic.Uint64

	// go-smtp registers a listener only once its Serve runs, so a
	// Shutdown racing with the start would miss it: cvd tracks them.
	mu        sync.Mutex
	listeners []net.Listener
	closed    bool
}

// NewSMTPServer returns a server that hands accepted mail to intake.
func NewSMTPServer(intake Intake, opts SMTPOptions) *SMTPServer {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &SMTPServer{
		intake: intake,
		opts:   opts,
		log:    opts.Logger.With("proto", "smtp"),
		conns:  newConnTracker(opts.MaxConnections, opts.MaxConnectionsPerIP),
	}
	s.conns.onRefuse = func(code string) { metrics.Refused.WithLabelValues(code).Inc() }
	srv := smtp.NewServer(s)
	srv.Domain = opts.Hostname
	srv.MaxMessageBytes = opts.MaxMessageBytes
	srv.MaxRecipients = opts.MaxRecipients
	srv.ReadTimeout = opts.ReadTimeout
	srv.WriteTimeout = opts.WriteTimeout
	srv.TLSConfig = opts.TLSConfig
	// Reports from internationalised addresses (RFC 6531): an MX in front
	// of cvd refuses to hand them over unless cvd offers SMTPUTF8.
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	s.srv = srv
	return s
}

// Serve accepts connections on l until Shutdown or Close.
func (s *SMTPServer) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	err := s.srv.Serve(s.conns.wrap(l, s.log))
	if err != nil && !(errors.Is(err, net.ErrClosed) && s.isClosed()) {
		return fmt.Errorf("smtp serve %s: %w", l.Addr(), err)
	}
	return nil
}

func (s *SMTPServer) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// closeListeners stops accepting connections, also on listeners whose
// Serve has not started yet.
func (s *SMTPServer) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, l := range s.listeners {
		l.Close()
	}
}

// Shutdown stops accepting connections, lets messages being transferred
// finish (and be answered), answers every other connection with 421 and
// waits for all of them to close or ctx to end.
func (s *SMTPServer) Shutdown(ctx context.Context) error {
	s.closeListeners()
	s.conns.drain()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	if err != nil {
		s.srv.Close()
		return fmt.Errorf("smtp shutdown: %w", err)
	}
	return nil
}

// Close closes the listener and every connection at once.
func (s *SMTPServer) Close() error {
	s.closeListeners()
	err := s.srv.Close()
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// NewSession implements smtp.Backend.
func (s *SMTPServer) NewSession(c *smtp.Conn) (smtp.Session, error) {
	tc := trackedOf(c.Conn())
	_, isTLS := c.TLSConnectionState()
	remote := c.Conn().RemoteAddr().String()
	log := s.log.With("cid", strconv.FormatUint(s.nextID.Add(1), 36), "remote", remote, "helo", c.Hostname(), "tls", isTLS)
	log.Debug("session")
	return &session{srv: s, conn: tc, log: log, remote: remote, helo: c.Hostname(), tls: isTLS}, nil
}

type session struct {
	srv    *SMTPServer
	conn   *trackedConn
	log    *slog.Logger
	remote string
	helo   string
	tls    bool

	from    string
	hasFrom bool
	to      []string
}

func (se *session) Reset() {
	se.from, se.hasFrom, se.to = "", false, nil
}

func (se *session) Logout() error { return nil }

func (se *session) Mail(from string, opts *smtp.MailOptions) error {
	addr, err := normalizeAddress(from, true)
	if err != nil {
		se.log.Info("refused sender", "from", from, "err", err)
		return refused(metrics.RefusedBadAddress, errBadAddress)
	}
	if opts != nil && opts.Size > 0 && opts.Size > se.srv.forwardable() {
		se.log.Info("message too big to forward", "from", addr, "size", opts.Size, "limit", se.srv.forwardable())
		return refused(metrics.RefusedTooBig, errTooBigToForward)
	}
	se.from, se.hasFrom = addr, true
	return nil
}

// forwardable is the largest message accepted now.
func (s *SMTPServer) forwardable() int64 {
	max := s.opts.MaxMessageBytes
	if s.opts.Forwardable != nil {
		if f := s.opts.Forwardable(); f > 0 && (max <= 0 || f < max) {
			return f
		}
	}
	if max <= 0 {
		return 1<<63 - 1
	}
	return max
}

func (se *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	addr, err := normalizeAddress(to, false)
	if err != nil {
		se.log.Info("refused recipient", "rcpt", to, "err", err)
		return refused(metrics.RefusedBadAddress, errBadAddress)
	}
	switch se.srv.intake.CheckRecipient(addr) {
	case RecipientLocal:
		se.to = append(se.to, addr)
		return nil
	case RecipientUnknown:
		se.log.Info("unknown recipient", "rcpt", addr)
		return refused(metrics.RefusedUnknownRcpt, errNoSuchUser)
	default:
		se.log.Warn("relaying refused", "from", se.from, "rcpt", addr)
		return refused(metrics.RefusedRelay, errRelayDenied)
	}
}

func (se *session) Data(r io.Reader) error {
	se.conn.setInData(true)
	defer se.conn.setInData(false)

	pieces, size, err := readPieces(r)
	if err != nil {
		if errors.Is(err, smtp.ErrDataTooLarge) {
			se.log.Info("message too large", "from", se.from, "limit", se.srv.opts.MaxMessageBytes)
			return refused(metrics.RefusedTooBig, smtp.ErrDataTooLarge)
		}
		// The rest of the transfer must not be read as commands.
		se.conn.poison()
		if errors.Is(err, smtp.ErrTooLongLine) {
			se.log.Info("message refused: line too long", "from", se.from)
			return refused(metrics.RefusedLineTooLong, errLineTooLong)
		}
		se.log.Info("message transfer failed", "err", err)
		return refused(metrics.RefusedTransfer, errTransfer)
	}
	if size > se.srv.forwardable() {
		se.log.Info("message too big to forward", "from", se.from, "size", size, "limit", se.srv.forwardable())
		return refused(metrics.RefusedTooBig, errTooBigToForward)
	}
	msg := &Message{
		ReceivedAt: se.srv.opts.Now(),
		RemoteAddr: se.remote,
		Helo:       se.helo,
		From:       se.from,
		To:         se.to,
		TLS:        se.tls,
		Pieces:     pieces,
		Size:       size,
	}
	// A message being answered is finished even during shutdown, so the
	// store does not get the connection's context.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := se.srv.intake.Accept(ctx, msg)
	if err != nil {
		se.log.Error("message not stored", "from", se.from, "size", size, "err", err)
		return refused(metrics.RefusedLocalError, errLocal)
	}
	metrics.Received.Inc()
	se.log.Info("message accepted", "id", id, "from", se.from, "rcpts", len(se.to), "size", size)
	return nil
}

// normalizeAddress checks an envelope address and lowercases its domain.
func normalizeAddress(addr string, allowNull bool) (string, error) {
	if addr == "" {
		if allowNull {
			return "", nil
		}
		return "", errors.New("empty address")
	}
	if len(addr) > 254 {
		return "", errors.New("address longer than 254 characters")
	}
	for _, r := range addr {
		if r < 0x21 || r == 0x7f || r == '<' || r == '>' || r == ',' {
			return "", errors.New("address contains a forbidden character")
		}
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", errors.New("address is not local@domain")
	}
	return addr[:at] + "@" + strings.ToLower(addr[at+1:]), nil
}

// refused counts a refusal by reason and returns the reply err.
func refused(reason string, err error) error {
	metrics.Refused.WithLabelValues(reason).Inc()
	return err
}
