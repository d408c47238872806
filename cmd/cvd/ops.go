package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/cvd-project/cvd/mailauth"
	"github.com/cvd-project/cvd/mailserver"

	"github.com/cvd-project/cvd/ops"
)

func cmdDNS(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dns")
	cfgPath := fs.String("config", "", "configuration file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	rs, err := ops.Records(c)
	if err != nil {
		return fmt.Errorf("dns: %s: %w", c.File, err)
	}
	ops.PrintRecords(stdout, c, rs)
	return nil
}

func cmdDoctor(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("doctor")
	cfgPath := fs.String("config", "", "configuration file")
	resolver := fs.String("resolver", os.Getenv("CVD_RESOLVER"), "DNS server HOST:PORT to ask (default $CVD_RESOLVER, else dns.resolver, else the system's)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	o := ops.DoctorOptions{Resolver: mailauth.NewResolver(c.DNS.Resolver), Now: now(), HTTP: &http.Client{Timeout: 10 * time.Second}}
	if *resolver != "" {
		if _, _, err := net.SplitHostPort(*resolver); err != nil {
			return fmt.Errorf("doctor: --resolver %q: use HOST:PORT: %w", *resolver, errUsage)
		}
		addr := *resolver
		o.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
	}
	if o.ProjectKey, err = loadProjectKey(c); err != nil {
		fmt.Fprintf(stderr, "cvd: %v\n", err)
	}
	if c.Delivery.Mode == mailserver.ModeSmarthost {
		opts, err := relayOptions(c)
		if err != nil {
			return fmt.Errorf("doctor: %w", err)
		}
		w, err := mailserver.NewDeliveryWorker(nil, opts)
		if err != nil {
			return fmt.Errorf("doctor: %s: [delivery]: %w", c.File, err)
		}
		o.CheckRelay = w.CheckRelay
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if !ops.PrintChecks(stdout, ops.Doctor(ctx, c, o)) {
		return errors.New("doctor: something is wrong; see the fixes above")
	}
	return nil
}
