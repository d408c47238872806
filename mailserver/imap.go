package mailserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// IMAPBackend is what the IMAP server needs from the rest of cvd: accounts,
// their mailboxes and the messages in them. An account is the string
// Authenticate returned; mailbox names are IMAP names with "/" as the
// hierarchy delimiter ("INBOX", "Incidents/2026-001"). Every method checks
// that the account may read the mailbox, and answers ErrNoMailbox or
// ErrMailboxForbidden when it may not.
type IMAPBackend interface {
	// Authenticate checks a username and password and returns the account,
	// or ErrIMAPAuth.
	Authenticate(ctx context.Context, username, password string) (account string, err error)
	// Mailboxes returns the names of the account's mailboxes.
	Mailboxes(ctx context.Context, account string) ([]string, error)
	// Access checks, cheaply, that the account may read a mailbox.
	Access(ctx context.Context, account, mailbox string) error
	// Status describes one of the account's mailboxes.
	Status(ctx context.Context, account, mailbox string) (*IMAPStatus, error)
	// Messages returns the messages with a UID above after, in UID order.
	Messages(ctx context.Context, account, mailbox string, after uint32) ([]IMAPMessage, error)
	// Flags returns the account's flags on a mailbox's messages by UID;
	// messages without flags may be left out.
	Flags(ctx context.Context, account, mailbox string) (map[uint32][]string, error)
	// Bodies calls fn with the raw message of each of uids (ascending) in
	// UID order; UIDs that are not (or no longer) in the mailbox are skipped.
	Bodies(ctx context.Context, account, mailbox string, uids []uint32, fn func(uid uint32, raw []byte) error) error
	// SetFlags replaces the account's flags on the messages given by UID.
	SetFlags(ctx context.Context, account, mailbox string, flags map[uint32][]string) error
}

// Errors an IMAPBackend returns.
var (
	// ErrIMAPAuth is a wrong username or password.
	ErrIMAPAuth = errors.New("invalid credentials")
	// ErrNoMailbox is a mailbox that does not exist.
	ErrNoMailbox = errors.New("no such mailbox")
	// ErrMailboxForbidden is a mailbox that exists but is not the
	// account's; the client is told it does not exist, and it is logged.
	ErrMailboxForbidden = errors.New("mailbox of another account")
)

// IMAPStatus describes a mailbox.
type IMAPStatus struct {
	UIDValidity uint32
	UIDNext     uint32
	Messages    uint32
	Unseen      uint32
	Size        int64
}

// IMAPMessage is a message's metadata.
type IMAPMessage struct {
	UID   uint32
	Size  int64
	Date  time.Time
	Flags []string
}

// IMAPOptions configures an IMAPServer.
type IMAPOptions struct {
	// TLSConfig enables STARTTLS, and is required by ServeTLS.
	TLSConfig *tls.Config
	// InsecureLoopbackAuth lets clients on a loopback address log in
	// without TLS (for the embedded default configuration only); everyone
	// else must use TLS first.
	InsecureLoopbackAuth bool
	// MaxFailuresPerAccountIP bounds failed logins to one account from one
	// client address, MaxFailuresPerIP those from one address (an IPv6
	// /64) to any account, within FailureWindow; beyond them logins from
	// that address are refused without checking the password. Defaults 10,
	// 30 and 15 minutes. Failures from one address never block another.
	MaxFailuresPerAccountIP int
	MaxFailuresPerIP        int
	FailureWindow           time.Duration
	// MaxConnections and MaxConnectionsPerIP bound the open connections,
	// in all and from one address (an IPv6 /64); defaults 1000 and 20.
	MaxConnections      int
	MaxConnectionsPerIP int
	// FailDelay is how long a failed login waits for its answer; default
	// one second, negative for none.
	FailDelay time.Duration
	Logger    *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// IMAPServer serves each account's mailboxes, read-only except for the
// account's own flags.
type IMAPServer struct {
	backend IMAPBackend
	opts    IMAPOptions
	log     *slog.Logger
	srv     *imapserver.Server
	limiter *loginLimiter
	conns   *connTracker
	nextID  atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	sessions map[*imapSession]struct{}
}

// imapCaps are the capabilities advertised besides those go-imap adds
// itself (IDLE, UNSELECT, ENABLE, SASL-IR, LITERAL-, STARTTLS, AUTH=PLAIN).
var imapCaps = imap.CapSet{
	imap.CapIMAP4rev1:  {},
	imap.CapNamespace:  {},
	imap.CapChildren:   {},
	imap.CapListStatus: {},
	imap.CapStatusSize: {},
}

// NewIMAPServer returns a server over backend.
func NewIMAPServer(backend IMAPBackend, opts IMAPOptions) *IMAPServer {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxFailuresPerAccountIP <= 0 {
		opts.MaxFailuresPerAccountIP = 10
	}
	if opts.MaxFailuresPerIP <= 0 {
		opts.MaxFailuresPerIP = 30
	}
	if opts.FailureWindow <= 0 {
		opts.FailureWindow = 15 * time.Minute
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = 1000
	}
	if opts.MaxConnectionsPerIP <= 0 {
		opts.MaxConnectionsPerIP = 20
	}
	if opts.FailDelay == 0 {
		opts.FailDelay = time.Second
	}
	s := &IMAPServer{
		backend:  backend,
		opts:     opts,
		log:      opts.Logger.With("proto", "imap"),
		limiter:  newLoginLimiter(opts.MaxFailuresPerAccountIP, opts.MaxFailuresPerIP, opts.FailureWindow),
		sessions: map[*imapSession]struct{}{},
		conns:    newConnTracker(opts.MaxConnections, opts.MaxConnectionsPerIP),
	}
	s.conns.refusal = func(reason string) string { return "* BYE " + reason + ", try again later\r\n" }
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.srv = imapserver.New(&imapserver.Options{
		NewSession: s.newSession,
		Caps:       imapCaps,
		Logger:     slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		TLSConfig:  opts.TLSConfig,
		// Login itself refuses cleartext from anywhere but loopback.
		InsecureAuth: opts.InsecureLoopbackAuth,
	})
	return s
}

// Serve accepts cleartext connections (with STARTTLS when a TLS
// configuration is set) on l until Close.
func (s *IMAPServer) Serve(l net.Listener) error {
	return s.serve(s.conns.wrap(l, s.log), l.Addr())
}

func (s *IMAPServer) serve(l net.Listener, addr net.Addr) error {
	if err := s.srv.Serve(l); err != nil {
		return fmt.Errorf("imap serve %s: %w", addr, err)
	}
	return nil
}

// ServeTLS accepts implicit-TLS connections (port 993 style) on l until
// Close.
func (s *IMAPServer) ServeTLS(l net.Listener) error {
	if s.opts.TLSConfig == nil {
		return errors.New("imap serve TLS: no TLS configuration")
	}
	return s.serve(tls.NewListener(s.conns.wrap(l, s.log), s.opts.TLSConfig), l.Addr())
}

// Close closes the listeners and every connection.
func (s *IMAPServer) Close() error {
	s.cancel()
	if err := s.srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) && err.Error() != "imapserver: server closed" {
		return fmt.Errorf("imap close: %w", err)
	}
	return nil
}

// Notify tells every session that messages may have been added: selected
// mailboxes are checked, and idling clients whose mailbox grew (only
// those) get EXISTS at once. Call it after committing new messages (it is
// cheap; sessions look only at what is newer than what they have).
func (s *IMAPServer) Notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.sessions {
		sess.newMail.Store(true)
		sess.signal()
	}
}

// notifyFlags tells the other sessions of account that its flags changed.
func (s *IMAPServer) notifyFlags(account string, except *imapSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.sessions {
		if sess != except && sess.account == account {
			sess.flagsChanged.Store(true)
			sess.signal()
		}
	}
}

func (s *IMAPServer) register(sess *imapSession) {
	s.mu.Lock()
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()
}

func (s *IMAPServer) unregister(sess *imapSession) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
}

func (s *IMAPServer) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	nc := c.NetConn()
	sess := &imapSession{
		srv:  s,
		conn: c,
		ip:   remoteIP(nc),
		wake: make(chan struct{}, 1),
		log:  s.log.With("cid", s.nextID.Add(1), "remote", nc.RemoteAddr().String()),
	}
	sess.log.Debug("connection")
	return sess, nil, nil
}

// loginLimiter counts failed logins per (account, client address) and per
// client address, never per account alone: a member whose account is
// attacked from one address can still log in from others.
type loginLimiter struct {
	perAccountIP, perIP int
	fails               *failureCounter
}

// maxLimiterKeys bounds the limiter's memory; beyond it the keys whose
// last failure is oldest are forgotten first.
const maxLimiterKeys = 100000

func newLoginLimiter(perAccountIP, perIP int, window time.Duration) *loginLimiter {
	return &loginLimiter{perAccountIP: perAccountIP, perIP: perIP,
		fails: newFailureCounter(window, maxLimiterKeys, max(perAccountIP, perIP))}
}

func pairKey(user, ip string) string { return "p:" + addressKey(ip) + " " + user }
func ipKey(ip string) string         { return "i:" + addressKey(ip) }

// blocked says which limit (if any) refuses a login now.
func (l *loginLimiter) blocked(user, ip string, now time.Time) string {
	if l.fails.count(pairKey(user, ip), now) >= l.perAccountIP {
		return "account from this address"
	}
	if l.fails.count(ipKey(ip), now) >= l.perIP {
		return "address"
	}
	return ""
}

func (l *loginLimiter) fail(user, ip string, now time.Time) {
	l.fails.add(pairKey(user, ip), now)
	l.fails.add(ipKey(ip), now)
}

// success forgets the account's failures from ip (not the address's: a
// login to one's own account does not buy more guesses at others).
func (l *loginLimiter) success(user, ip string) {
	l.fails.reset(pairKey(user, ip))
}

func isLoopback(ip string) bool {
	p := net.ParseIP(ip)
	return p != nil && p.IsLoopback()
}
