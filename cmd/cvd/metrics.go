package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/metrics"
	"github.com/cvd-project/cvd/store"
)

// listeners are the addresses 'cvd serve' listens on, for the health check.
type listeners struct {
	smtp, imap, web string
	imapTLS         bool
}

// startMetrics serves /metrics and /healthz on metrics.listen; it does
// nothing when that is "".
func startMetrics(c *config.Config, db *store.DB, desk *embargo.Desk, l listeners, log *slog.Logger) (stop func(), err error) {
	if c.Metrics.Listen == "" {
		return func() {}, nil
	}
	log = log.With("part", "metrics")
	source := func(ctx context.Context) (metrics.State, error) {
		st, err := db.Stats(ctx)
		if err != nil {
			log.Warn("metrics: read database", "err", err)
			return metrics.State{}, err
		}
		next, err := desk.NextDue(ctx)
		if err != nil {
			log.Warn("metrics: next deadline", "err", err)
			return metrics.State{}, err
		}
		return metrics.State{Spool: st.Spool, Queue: st.Queue, Incidents: st.Incidents, NextDeadline: next,
			ReleaseLag: st.LastReleaseLag, HasRelease: st.HasRelease}, nil
	}
	checks := []metrics.Check{
		{Name: "database", Probe: db.Ping},
		{Name: "smtp", Probe: func(ctx context.Context) error { return probeGreeting(ctx, l.smtp, false, "220 ") }},
		{Name: "imap", Probe: func(ctx context.Context) error { return probeGreeting(ctx, l.imap, l.imapTLS, "* OK") }},
	}
	if l.web != "" {
		checks = append(checks, metrics.Check{Name: "web", Probe: func(ctx context.Context) error { return probeWeb(ctx, l.web) }})
	}
	ln, err := net.Listen("tcp", c.Metrics.Listen)
	if err != nil {
		return nil, fmt.Errorf("%s: metrics.listen: %w", c.File, err)
	}
	srv := &http.Server{
		Handler:           metrics.Handler(metrics.NewRegistry(source), checks, log),
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("metrics listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}, nil
}

// probeGreeting connects to addr as a client would and checks that the
// server's first line starts with want. Implicit TLS is only handshaken:
// the probe asks whether the listener answers, not who it is.
func probeGreeting(ctx context.Context, addr string, implicitTLS bool, want string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if implicitTLS {
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS: %w", err)
		}
		c = tc
	}
	b, err := bufio.NewReaderSize(c, 1024).ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("read greeting: %w", err)
	}
	line := strings.TrimRight(string(b), "\r\n")
	if !strings.HasPrefix(line, want) {
		return fmt.Errorf("greeting %q", truncate(line, 80))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// probeWeb asks the site for security.txt; any answer below 500 will do.
func probeWeb(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/.well-known/security.txt", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}
