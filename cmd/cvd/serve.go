package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/lists"
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
	if err := desk.PinConfigKeys(ctx); err != nil {
		return err
	}
	svc.Keywords = desk.HandleKeyword
	defer startScheduler(ctx, desk, worker.Wake)()

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
		Bounce: bounceHandler(db, svc, c.Domain, log), Intake: desk.Intake, Routed: func() { worker.Wake(); imapSvc.Notify() },
		AfterBatch: desk.FlushTriage}
	desk.DeferTriage = true
	wakeRouter, stopRouter := startRouter(ctx, router)
	defer stopRouter()

	smtpSrv := mailserver.NewSMTPServer(&intake{domain: c.Domain, db: db, wake: wakeRouter}, mailserver.SMTPOptions{
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
	domain string
	db     *store.DB
	wake   func()
}

func (i *intake) CheckRecipient(addr string) mailserver.Recipient {
	switch lists.ParseAddress(addr, i.domain).Kind {
	case lists.Security, lists.Announce:
		return mailserver.RecipientLocal
	case lists.Unknown:
		return mailserver.RecipientUnknown
	default:
		return mailserver.RecipientForeign
	}
}

func (i *intake) Accept(ctx context.Context, m *mailserver.Message) (string, error) {
	id, err := i.db.Spool(ctx, store.Envelope{
		ReceivedAt: m.ReceivedAt,
		RemoteAddr: m.RemoteAddr,
		Helo:       m.Helo,
		MailFrom:   m.From,
		Rcpts:      m.To,
		TLS:        m.TLS,
	}, m.Raw)
	if err != nil {
		return "", err
	}
	i.wake()
	return strconv.FormatInt(id, 10), nil
}
