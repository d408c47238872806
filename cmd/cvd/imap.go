package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"database/sql"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-message/textproto"
	"golang.org/x/crypto/argon2"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/mailserver"
	"github.com/cvd-project/cvd/store"
)

// imapBackend serves the store's IMAP view (see store/imap.go) to the
// IMAP server.
type imapBackend struct {
	db *store.DB
}

var _ mailserver.IMAPBackend = imapBackend{}

// imapErr maps store errors onto the IMAP server's.
func imapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrForbidden):
		return fmt.Errorf("%w: %w", mailserver.ErrMailboxForbidden, err)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", mailserver.ErrNoMailbox, err)
	}
	return err
}

func (b imapBackend) Authenticate(ctx context.Context, username, password string) (string, error) {
	a, err := b.db.IMAPAccountByEmail(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		// Same work as a real check, so that timing does not tell which
		// accounts exist.
		checkPassword(dummyHash, password)
		return "", mailserver.ErrIMAPAuth
	}
	if err != nil {
		return "", err
	}
	if !checkPassword(a.PasswordHash, password) {
		return "", mailserver.ErrIMAPAuth
	}
	return a.Email, nil
}

func (b imapBackend) Mailboxes(ctx context.Context, account string) ([]string, error) {
	names, err := b.db.IMAPMailboxes(ctx, account)
	return names, imapErr(err)
}

func (b imapBackend) Access(ctx context.Context, account, mailbox string) error {
	return imapErr(b.db.IMAPAccess(ctx, account, mailbox))
}

func (b imapBackend) Status(ctx context.Context, account, mailbox string) (*mailserver.IMAPStatus, error) {
	st, err := b.db.IMAPMailboxStatus(ctx, account, mailbox)
	if err != nil {
		return nil, imapErr(err)
	}
	return &mailserver.IMAPStatus{UIDValidity: st.UIDValidity, UIDNext: st.UIDNext, Messages: st.Messages, Unseen: st.Unseen, Size: st.Size}, nil
}

func (b imapBackend) Messages(ctx context.Context, account, mailbox string, after uint32) ([]mailserver.IMAPMessage, error) {
	ms, err := b.db.IMAPMessages(ctx, account, mailbox, after)
	if err != nil {
		return nil, imapErr(err)
	}
	out := make([]mailserver.IMAPMessage, len(ms))
	for i, m := range ms {
		out[i] = mailserver.IMAPMessage{UID: m.UID, Size: m.Size, Date: m.Date, Flags: strings.Fields(m.Flags)}
	}
	return out, nil
}

func (b imapBackend) Flags(ctx context.Context, account, mailbox string) (map[uint32][]string, error) {
	fs, err := b.db.IMAPFlags(ctx, account, mailbox)
	if err != nil {
		return nil, imapErr(err)
	}
	out := make(map[uint32][]string, len(fs))
	for uid, f := range fs {
		out[uid] = strings.Fields(f)
	}
	return out, nil
}

func (b imapBackend) Bodies(ctx context.Context, account, mailbox string, uids []uint32, fn func(uint32, []byte) error) error {
	return imapErr(b.db.IMAPBodies(ctx, account, mailbox, uids, fn))
}

func (b imapBackend) SetFlags(ctx context.Context, account, mailbox string, flags map[uint32][]string) error {
	m := make(map[uint32]string, len(flags))
	for uid, f := range flags {
		m[uid] = strings.Join(f, " ")
	}
	return imapErr(b.db.SetIMAPFlags(ctx, account, mailbox, m))
}

// argon2id parameters (RFC 9106 second recommendation, lowered memory:
// 19 MiB, 2 passes, as OWASP suggests for interactive logins).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// hashPassword returns the PHC string of password's argon2id hash.
func hashPassword(password string) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	sum := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(sum))
}

// dummyHash is checked for unknown accounts.
var dummyHash = hashPassword("no such account")

// checkPassword checks password against a PHC argon2id string.
func checkPassword(phc, password string) bool {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > 1<<21 || t == 0 || t > 16 || p == 0 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

var passwordEncoding = base32.NewEncoding("abcdefghijkmnpqrstuvwxyz23456789").WithPadding(base32.NoPadding)

// newPassword returns a random app password: 120 bits as six groups of
// four characters without look-alikes (no l, o, 0, 1).
func newPassword() string {
	b := make([]byte, 15)
	rand.Read(b)
	s := passwordEncoding.EncodeToString(b)
	var out strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			out.WriteByte('-')
		}
		out.WriteString(s[i:min(i+4, len(s))])
	}
	return out.String()
}

// errNoKey means a member has no usable key to receive a password.
var errNoKey = errors.New("no usable OpenPGP key")

// imapAccounts issues IMAP passwords: generated here, stored hashed, sent
// to the member sealed to their pinned key.
type imapAccounts struct {
	db     *store.DB
	key    *crypto.Key
	domain string
	host   string // the IMAP server's name in the instructions
	port   string
	tls    string // how to connect, in words
	now    func() time.Time
	log    *slog.Logger

	mu     sync.Mutex
	warned map[string]bool
}

// issue gives email a new IMAP password and queues it, sealed, in the
// same transaction; the old password stops working at once.
func (a *imapAccounts) issue(ctx context.Context, email string) (created bool, fpr string, err error) {
	email = strings.ToLower(email)
	now := a.now()
	pk, err := a.db.PinnedKey(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		return false, "", fmt.Errorf("imap password for %s: %w pinned", email, errNoKey)
	}
	if err != nil {
		return false, "", fmt.Errorf("imap password for %s: %w", email, err)
	}
	k, err := crypto.ParseKey(pk.Armored)
	if err != nil {
		return false, "", fmt.Errorf("imap password for %s: %w: %w", email, errNoKey, err)
	}
	if err := crypto.CheckUsable(k, now); err != nil {
		return false, "", fmt.Errorf("imap password for %s: %w: %w", email, errNoKey, err)
	}
	password := newPassword()
	from := "security@" + a.domain
	var inner bytes.Buffer
	fmt.Fprintf(&inner, "Subject: Your IMAP password for %s\r\nFrom: %s\r\nTo: %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", a.domain, from, email)
	body := fmt.Sprintf(`cvd keeps an archive of what you were sent: every incident you belong to,
each message exactly as it was encrypted to you, and the announce archive.
Read it with any IMAP client:

  server:    %s
  port:      %s
  security:  %s
  username:  %s
  password:  %s

This password is for IMAP only and replaces any earlier one. If you lose
it, ask the security team for a new one (cvd member password %s).
`, a.host, a.port, a.tls, email, password, email)
	inner.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	var outer textproto.Header
	outer.Set("From", from)
	outer.Set("To", email)
	outer.Set("Date", now.Format(time.RFC1123Z))
	outer.Set("Message-Id", "<imap-"+strings.ReplaceAll(newPassword(), "-", "")+"@"+a.domain+">")
	sealed, err := crypto.Seal(inner.Bytes(), outer, a.key, k, now)
	if err != nil {
		return false, "", fmt.Errorf("imap password for %s: seal: %w", email, err)
	}
	err = a.db.Write(ctx, func(tx *sql.Tx) error {
		var err error
		created, err = store.SetIMAPPasswordTx(ctx, tx, email, hashPassword(password), now)
		if err != nil {
			return err
		}
		_, err = store.EnqueueTx(ctx, tx, &store.OutMessage{Rcpts: []string{email}, Raw: sealed, Origin: store.OriginNotice,
			Kind: "imap-password", CreatedAt: now})
		return err
	})
	if err != nil {
		return false, "", fmt.Errorf("imap password for %s: %w", email, err)
	}
	return created, k.Fingerprint(), nil
}

// provision gives every member without an IMAP account one. Members
// without a usable key are skipped (and logged once) until they have one.
func (a *imapAccounts) provision(ctx context.Context) (int, error) {
	emails, err := a.db.MembersWithoutIMAPAccount(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range emails {
		_, _, err := a.issue(ctx, e)
		if errors.Is(err, errNoKey) {
			a.mu.Lock()
			if !a.warned[e] {
				a.warned[e] = true
				a.log.Warn("no IMAP account: member has no usable key to receive a password", "email", e)
			}
			a.mu.Unlock()
			continue
		}
		if err != nil {
			return n, err
		}
		a.log.Info("imap account created, password sent", "email", e)
		n++
	}
	return n, nil
}

// imapPoll is how often the IMAP watcher looks for new messages written
// by other processes and for members without an account.
const imapPoll = 2 * time.Second

// imapService is the running IMAP server and its watcher.
type imapService struct {
	srv      *mailserver.IMAPServer
	accounts *imapAccounts
	addr     string
	wake     chan struct{}
	auto     bool // give members accounts unasked
	stop     func()
}

// Notify makes the watcher look at once (after a post was distributed).
func (s *imapService) Notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// startIMAP listens on c.IMAP.Listen (implicit TLS when the port is 993,
// else cleartext with STARTTLS) and serves the members' archives.
func startIMAP(ctx context.Context, c *config.Config, db *store.DB, key *crypto.Key, tlsConfig *tls.Config, log *slog.Logger) (*imapService, error) {
	host, port, err := net.SplitHostPort(c.IMAP.Listen)
	if err != nil {
		return nil, fmt.Errorf("%s: imap.listen: %w", c.File, err)
	}
	ln, err := net.Listen("tcp", c.IMAP.Listen)
	if err != nil {
		return nil, fmt.Errorf("%s: imap.listen: %w", c.File, err)
	}
	implicit := port == "993"
	ilog := log.With("part", "imap")
	srv := mailserver.NewIMAPServer(imapBackend{db}, mailserver.IMAPOptions{
		TLSConfig:            tlsConfig,
		InsecureLoopbackAuth: c.Embedded,
		Logger:               ilog,
	})
	mode := "STARTTLS"
	if implicit {
		mode = "TLS (port 993)"
	} else if c.Embedded {
		mode = "none on this machine (127.0.0.1), STARTTLS otherwise"
	}
	// Members are sent passwords unasked only when they can reach the
	// server: not for a loopback listener (the embedded default), where
	// 'cvd member password' still issues them.
	auto := !loopbackHost(host)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = c.Hostname
	}
	acc := &imapAccounts{db: db, key: key, domain: c.Domain, host: host, port: port, tls: mode, now: now, log: ilog, warned: map[string]bool{}}
	s := &imapService{srv: srv, accounts: acc, addr: ln.Addr().String(), wake: make(chan struct{}, 1), auto: auto}
	errc := make(chan error, 1)
	go func() {
		if implicit {
			errc <- srv.ServeTLS(ln)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.watch(wctx, ilog)
	}()
	s.stop = func() {
		cancel()
		wg.Wait()
		if err := srv.Close(); err != nil {
			ilog.Error("imap close", "err", err)
		}
		if err := <-errc; err != nil {
			ilog.Error("imap serve", "err", err)
		}
	}
	return s, nil
}

// watch provisions accounts (when auto) and tells sessions about new
// messages, when woken and every imapPoll (for changes made by other
// processes, such as the cvd commands).
func (s *imapService) watch(ctx context.Context, log *slog.Logger) {
	var last int64 = -1
	t := time.NewTicker(imapPoll)
	defer t.Stop()
	for {
		if s.auto {
			if _, err := s.accounts.provision(ctx); err != nil && ctx.Err() == nil {
				log.Error("imap accounts", "err", err)
			}
		}
		if w, err := s.accounts.db.IMAPWatermark(ctx); err != nil {
			if ctx.Err() == nil {
				log.Error("imap watermark", "err", err)
			}
		} else if w != last {
			last = w
			s.srv.Notify()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// loopbackHost reports whether a listen host is only reachable from this
// machine.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// cmdMemberPassword is 'cvd member password EMAIL': a new IMAP password,
// sent to the member sealed to their key.
func cmdMemberPassword(args []string, stdout, stderr io.Writer) error {
	if len(args) < 1 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("member password: EMAIL is required: %w", errUsage)
	}
	email := args[0]
	fs := newFlags("member password")
	cfgPath := fs.String("config", "", "configuration file")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	c, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	key, err := loadProjectKey(c)
	if err != nil {
		return err
	}
	ctx := context.Background()
	db, err := store.Open(ctx, c.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	ok, err := db.IsMember(ctx, email)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("member password: %s is not a member of any list", email)
	}
	host, port, _ := net.SplitHostPort(c.IMAP.Listen)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = c.Hostname
	}
	mode := "STARTTLS"
	if port == "993" {
		mode = "TLS (port 993)"
	}
	acc := &imapAccounts{db: db, key: key, domain: c.Domain, host: host, port: port, tls: mode, now: time.Now,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), warned: map[string]bool{}}
	created, fpr, err := acc.issue(ctx, email)
	if err != nil {
		return err
	}
	verb := "replaced the IMAP password of"
	if created {
		verb = "created an IMAP account for"
	}
	fmt.Fprintf(stdout, "%s %s; the password is queued to them, sealed to key %s\n", verb, strings.ToLower(email), fpr)
	return nil
}
