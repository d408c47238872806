package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/mailauth"
	"github.com/cvd-project/cvd/mailserver"
	"github.com/cvd-project/cvd/store"
)

// shutdownTimeout bounds how long a shutdown waits for messages in transfer.
const shutdownTimeout = 30 * time.Second

func cmdServe(args []string, stderr io.Writer) error {
	fs := newFlags("serve")
	cfgPath := fs.String("config", "", "configuration file (default $CVD_CONFIG, ./cvd.toml, or the embedded default)")
	logFormat := fs.String("log-format", "", "log format: text or json (default from the configuration)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *logFormat != "" && *logFormat != "text" && *logFormat != "json" {
		return fmt.Errorf("serve: --log-format %q: use text or json: %w", *logFormat, errUsage)
	}
	c, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *logFormat != "" {
		c.Log.Format = *logFormat
	}
	log := newLogger(c.Log, stderr)
	if err := checkClock(log); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, c, log); err != nil {
		return err
	}
	// Logged once every part has stopped and the database is closed.
	log.Info("stopped")
	return nil
}

// loadConfig finds the configuration: the flag, then $CVD_CONFIG, then
// ./cvd.toml, then the embedded default.
func loadConfig(flagPath string) (*config.Config, error) {
	path := flagPath
	if path == "" {
		path = os.Getenv("CVD_CONFIG")
	}
	if path == "" {
		if _, err := os.Stat("cvd.toml"); err == nil {
			path = "cvd.toml"
		}
	}
	if path != "" {
		return config.Load(path)
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("embedded default: %w", err)
	}
	return config.Default(wd)
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(ctx context.Context, c *config.Config, log *slog.Logger) error {
	setMemoryLimit(log)
	if c.Embedded {
		if _, err := provision(c, crypto.KindCurve25519); err != nil {
			return fmt.Errorf("set up %s: %w", c.DataDir, err)
		}
	} else {
		for _, f := range []string{c.PGP.KeyFile, c.TLS.CertFile, c.TLS.KeyFile} {
			if !exists(f) {
				return fmt.Errorf("%s: %s is missing; run 'cvd init' or fix the path in the configuration", c.File, f)
			}
		}
	}
	// DKIM keys came after the first releases: a configuration without
	// them gets them here rather than failing.
	if made, err := provisionDKIM(c); err != nil {
		return fmt.Errorf("set up DKIM keys: %w", err)
	} else if len(made) > 0 {
		log.Warn("generated DKIM keys; publish the records 'cvd dns' prints", "files", made)
	}
	key, err := loadProjectKey(c)
	if err != nil {
		return err
	}
	if err := applyTemplates(c, log); err != nil {
		return err
	}
	tlsConfig, err := mailserver.LoadTLS(c.TLS.CertFile, c.TLS.KeyFile)
	if err != nil {
		return fmt.Errorf("%s: [tls]: %w", c.File, err)
	}
	outbox, err := mailserver.OpenMaildir(c.Delivery.OutboxDir, c.Hostname)
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, c.Database)
	if err != nil {
		return err
	}
	defer func() {
		if err := db.Close(); err != nil {
			log.Error("close database", "err", err)
		}
	}()
	svc := listService(c, db, key, log)
	svc.Now = now
	if err := svc.EnsureAnnounceList(ctx); err != nil {
		return err
	}
	worker, stopDelivery, err := startDelivery(ctx, c, db, outbox, svc, log)
	if err != nil {
		return err
	}
	defer stopDelivery()
	imapSvc, err := startIMAP(ctx, c, db, key, tlsConfig, log)
	if err != nil {
		return err
	}
	defer imapSvc.stop()

	desk, err := newDesk(c, db, key, svc, log)
	if err != nil {
		return err
	}
	desk.Now = now
	extendDesk(c, desk)
	if err := desk.PinConfigKeys(ctx); err != nil {
		return err
	}
	svc.Keywords = desk.HandleKeyword
	hooks, stopHooks, err := startWebhooks(ctx, c, db, log)
	if err != nil {
		return err
	}
	defer stopHooks()
	defer startScheduler(ctx, desk, func() { worker.Wake(); hooks.Wake() })()
	defer startRetention(ctx, c.Retention, db, log)()
	defer startDepsWatch(ctx, c, desk, func() { worker.Wake(); hooks.Wake() })()

	site, err := newSite(c, desk, key)
	if err != nil {
		return err
	}
	web, err := startWeb(c, site, svc, log)
	if err != nil {
		return err
	}
	defer web.stop()
	if c.Web.StaticDir != "" {
		defer keepStatic(ctx, site, c.Web.StaticDir, log.With("part", "site"))()
	}

	ln, err := net.Listen("tcp", c.SMTP.Listen)
	if err != nil {
		return fmt.Errorf("%s: smtp.listen: %w", c.File, err)
	}
	router := &embargo.Router{DB: db, Domain: c.Domain, Lists: svc, Log: log.With("part", "router"),
		Bounce: bounceHandler(db, svc, c.Domain, log), Intake: desk.Intake, RoleMail: desk.ForwardRoleMail, Routed: func() { worker.Wake(); imapSvc.Notify() },
		AfterBatch: desk.FlushTriage, Posted: desk.RecordReplyAcks}
	desk.DeferTriage = true
	wakeRouter, stopRouter := startRouter(ctx, router)
	defer stopRouter()

	smtpSrv := mailserver.NewSMTPServer(&intake{domain: c.Domain, db: db, wake: wakeRouter,
		auth: &mailauth.Checker{AuthServID: c.Hostname, Resolver: mailauth.NewResolver(c.DNS.Resolver)}, log: log}, mailserver.SMTPOptions{
		Hostname:            c.Hostname,
		MaxMessageBytes:     c.SMTP.MaxMessageBytes,
		MaxRecipients:       c.SMTP.MaxRecipients,
		MaxConnections:      c.SMTP.MaxConnections,
		MaxConnectionsPerIP: c.SMTP.MaxConnectionsPerIP,
		ReadTimeout:         c.SMTP.ReadTimeout,
		WriteTimeout:        c.SMTP.WriteTimeout,
		// A report is forwarded sealed: it must fit the relay once grown.
		Forwardable: func() int64 { return crypto.MaxCleartextFor(worker.RelayMaxSize()) },
		TLSConfig:   tlsConfig,
		Logger:      log,
	})
	errc := make(chan error, 1)
	go func() { errc <- smtpSrv.Serve(ln) }()
	stopMetrics, err := startMetrics(c, db, desk, listeners{smtp: ln.Addr().String(), imap: imapSvc.addr,
		imapTLS: strings.HasSuffix(c.IMAP.Listen, ":993"), web: strings.TrimSuffix(web.addr, "off")}, log)
	if err != nil {
		smtpSrv.Close()
		return err
	}
	defer stopMetrics()

	warnPublicLists(c, log)
	log.Info("cvd ready",
		"version", versionString(),
		"config", c.File,
		"domain", c.Domain,
		"smtp", ln.Addr().String(),
		"imap", imapSvc.addr,
		"web", web.addr,
		"intake", "security@"+c.Domain,
		"data", c.DataDir,
		"database", c.Database,
		"outbox", outbox.Dir,
		"delivery", c.Delivery.Mode,
		"pgp_key", c.PGP.PublicFile,
		"tls_cert", c.TLS.CertFile)

	select {
	case err := <-errc:
		return err
	case err := <-web.errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := smtpSrv.Shutdown(sctx); err != nil {
		log.Error("smtp shutdown", "err", err)
	}
	<-errc
	return nil
}

// intake connects the SMTP server to cvd's addresses and spool.
type intake struct {
	log    *slog.Logger
	domain string
	db     *store.DB
	wake   func()
	// auth checks the sender (SPF, DKIM, DMARC) before the message is
	// spooled; the result is stored with it.
	auth *mailauth.Checker
}

func (i *intake) CheckRecipient(addr string) mailserver.Recipient {
	if isRoleAddress(addr, i.domain) {
		return mailserver.RecipientLocal
	}
	a := lists.ParseAddress(addr, i.domain)
	switch a.Kind {
	case lists.Security:
		return i.checkSecurityTag(a.Tag)
	case lists.Announce:
		switch {
		case a.Tag == "", a.Tag == "subscribe", a.Tag == "unsubscribe", strings.HasPrefix(a.Tag, "confirm-"):
			return mailserver.RecipientLocal
		}
		return mailserver.RecipientUnknown
	case lists.Unknown:
		return mailserver.RecipientUnknown
	default:
		return mailserver.RecipientForeign
	}
}

// checkSecurityTag refuses security+TAG addresses that name no incident
// list and bounce tokens never issued, so that the sender learns it at
// RCPT. When the database cannot answer, the address is accepted: the
// router decides later, as before.
func (i *intake) checkSecurityTag(tag string) mailserver.Recipient {
	if tag == "" {
		return mailserver.RecipientLocal
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if token, ok := strings.CutPrefix(tag, "bounce-"); ok {
		_, err = i.db.QueueEntryByToken(ctx, token)
	} else {
		err = i.db.Read(ctx, func(tx *sql.Tx) error {
			l, err := store.ListByNameTx(ctx, tx, tag)
			if err == nil && l.Kind != store.ListIncident {
				err = store.ErrNotFound
			}
			return err
		})
	}
	if errors.Is(err, store.ErrNotFound) {
		return mailserver.RecipientUnknown
	}
	if err != nil {
		i.log.Warn("check recipient: accepted without checking", "tag", tag, "err", err)
	}
	return mailserver.RecipientLocal
}

// isRoleAddress reports whether addr is postmaster@ or abuse@ the domain
// (RFC 5321 4.5.1, RFC 2142).
func isRoleAddress(addr, domain string) bool {
	local, d, ok := strings.Cut(addr, "@")
	if !ok || !strings.EqualFold(d, domain) {
		return false
	}
	local = strings.ToLower(local)
	return local == "postmaster" || local == "abuse"
}

func (i *intake) Accept(ctx context.Context, m *mailserver.Message) (string, error) {
	auth := i.auth.CheckReader(ctx, m.RemoteAddr, m.Helo, m.From, m.Reader)
	i.log.Debug("sender checked", "from", m.From, "auth", auth.String())
	id, err := i.db.SpoolPieces(ctx, store.Envelope{
		Auth:       auth,
		ReceivedAt: m.ReceivedAt,
		RemoteAddr: m.RemoteAddr,
		Helo:       m.Helo,
		MailFrom:   m.From,
		Rcpts:      m.To,
		TLS:        m.TLS,
	}, m.Pieces)
	if err != nil {
		return "", err
	}
	i.wake()
	return strconv.FormatInt(id, 10), nil
}
