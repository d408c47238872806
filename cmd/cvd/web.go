package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/ops"
	"github.com/cvd-project/cvd/publish"
)

// siteSource is what the public site may show: the advisories of released
// incidents (the desk leaves out every other incident) and the project's
// public key for the Web Key Directory.
type siteSource struct {
	desk *embargo.Desk
	key  *crypto.Key
}

func (s siteSource) Published(ctx context.Context) ([]publish.Advisory, error) {
	return s.desk.Published(ctx)
}

func (s siteSource) Keys(context.Context) ([]publish.PublicKey, error) {
	pubs, err := ops.PublishedKeys(s.key, now())
	if err != nil {
		return nil, err
	}
	var out []publish.PublicKey
	for _, e := range s.key.Emails() {
		for _, pub := range pubs {
			out = append(out, publish.PublicKey{Email: e, Key: pub})
		}
	}
	return out, nil
}

// newSite builds the public site from the configuration's [web] section.
func newSite(c *config.Config, desk *embargo.Desk, key *crypto.Key) (*publish.Site, error) {
	site, err := publish.NewSite(siteSource{desk: desk, key: key}, publish.SiteConfig{
		Project:    desk.Project,
		Contacts:   c.Web.Contacts,
		PolicyURL:  c.Web.PolicyURL,
		PolicyText: c.Web.PolicyText,
		Languages:  c.Web.Languages,
		ExpiresIn:  c.Web.ExpiresIn,
		Now:        now,
		// RFC 9116 §2.3: security.txt should be signed; the project key
		// (the one in the Encryption field) signs it.
		Sign: func(text []byte) ([]byte, error) { return crypto.ClearSign(text, key, now()) },
	})
	if err != nil {
		return nil, fmt.Errorf("%s: [web]: %w", c.File, err)
	}
	return site, nil
}

// webServer is the running HTTP server of the public site.
type webServer struct {
	// addr is the listening address, or "off".
	addr string
	// errc reports a server that stopped by itself; nil when off.
	errc <-chan error
	stop func()
}

// webHandler is the site plus the announce list's one-click unsubscribe.
func webHandler(site *publish.Site, svc *lists.Service, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/unsubscribe/", site.Unsubscribe(func(ctx context.Context, token string) error {
		known, err := svc.OneClickUnsubscribe(ctx, token)
		if err != nil {
			log.Error("one-click unsubscribe", "err", err)
			return err
		}
		log.Info("one-click unsubscribe", "known_token", known)
		return nil
	}))
	mux.Handle("/", site)
	return mux
}

// startWeb serves the public site on web.listen; an empty listen address
// turns it off. stop shuts it down gracefully.
func startWeb(c *config.Config, site *publish.Site, svc *lists.Service, log *slog.Logger) (*webServer, error) {
	if c.Web.Listen == "" {
		return &webServer{addr: "off", stop: func() {}}, nil
	}
	log = log.With("part", "web")
	ln, err := net.Listen("tcp", c.Web.Listen)
	if err != nil {
		return nil, fmt.Errorf("%s: web.listen: %w", c.File, err)
	}
	srv := &http.Server{
		Handler:           webHandler(site, svc, log),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("web server: %w", err)
		}
	}()
	return &webServer{addr: ln.Addr().String(), errc: errc, stop: func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			log.Warn("web shutdown", "err", err)
			srv.Close()
		}
		<-done
	}}, nil
}
