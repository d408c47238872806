package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/cvd-project/cvd/accounts"
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
	account, err := accounts.Authenticate(ctx, b.db, username, password)
	if errors.Is(err, accounts.ErrAuth) {
		return "", fmt.Errorf("%w: %w", mailserver.ErrIMAPAuth, err)
	}
	return account, err
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

// imapPoll is how often the IMAP watcher looks for new messages written
// by other processes and for members without an account.
const imapPoll = 2 * time.Second

// imapService is the running IMAP server and its watcher.
type imapService struct {
	srv      *mailserver.IMAPServer
	accounts *accounts.Issuer
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
	server, err := accounts.ServerFor(c.IMAP.Listen, c.Hostname, c.Embedded)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.File, err)
	}
	ln, err := net.Listen("tcp", c.IMAP.Listen)
	if err != nil {
		return nil, fmt.Errorf("%s: imap.listen: %w", c.File, err)
	}
	implicit := server.Port == "993"
	ilog := log.With("part", "imap")
	srv := mailserver.NewIMAPServer(imapBackend{db}, mailserver.IMAPOptions{
		TLSConfig:            tlsConfig,
		InsecureLoopbackAuth: c.Embedded,
		Logger:               ilog,
	})
	// Members are sent passwords unasked only when they can reach the
	// server: not for a loopback listener (the embedded default), where
	// 'cvd member password' still issues them.
	host, _, _ := net.SplitHostPort(c.IMAP.Listen)
	auto := !loopbackHost(host)
	acc := &accounts.Issuer{DB: db, Key: key, Domain: c.Domain, Server: server, Now: now, Log: ilog}
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
			if _, err := s.accounts.Provision(ctx); err != nil && ctx.Err() == nil {
				log.Error("imap accounts", "err", err)
			}
		}
		if w, err := s.accounts.DB.IMAPWatermark(ctx); err != nil {
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
	server, err := accounts.ServerFor(c.IMAP.Listen, c.Hostname, c.Embedded)
	if err != nil {
		return fmt.Errorf("%s: %w", c.File, err)
	}
	acc := &accounts.Issuer{DB: db, Key: key, Domain: c.Domain, Server: server, Now: time.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	created, fpr, err := acc.Issue(ctx, email)
	if err != nil {
		return err
	}
	verb := "replaced the IMAP password of"
	if created {
		verb = "created an IMAP account for"
	}
	if err := db.AddOperatorEvent(ctx, &store.OperatorEvent{At: now(), Actor: cliActor(), Action: "member password", Subject: strings.ToLower(email),
		Detail: verb + ", sealed to key " + fpr}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s; the password is queued to them, sealed to key %s\n", verb, strings.ToLower(email), fpr)
	return nil
}
