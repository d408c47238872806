package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/store"
	"github.com/cvd-project/cvd/webhook"
)

// minWebhookSecret is the least length of a webhook secret.
const minWebhookSecret = 32

// extendDesk gives the desk what [announce] and the roster categories
// configure.
func extendDesk(c *config.Config, d *embargo.Desk) {
	for _, w := range c.Announce.Webhooks {
		d.Webhooks = append(d.Webhooks, w.Name)
	}
	for i := range d.Roster {
		if i < len(c.Embargo.Roster) && strings.EqualFold(d.Roster[i].Email, c.Embargo.Roster[i].Email) {
			d.Roster[i].Category = c.Embargo.Roster[i].Category
		}
	}
}

// categorySelection turns --category values (comma-separated, aliases
// allowed) into notify selections.
func categorySelection(v string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		c, ok := config.ParseCategory(s)
		if !ok {
			return nil, fmt.Errorf("incident notify: --category %q: use distribution, vendor or service-provider: %w", s, errUsage)
		}
		out = append(out, "category="+c)
	}
	return out, nil
}

// webhookEndpoints reads the configured webhooks and their secrets.
func webhookEndpoints(c *config.Config, log *slog.Logger) (map[string]webhook.Endpoint, error) {
	out := map[string]webhook.Endpoint{}
	for i, w := range c.Announce.Webhooks {
		key := fmt.Sprintf("announce.webhook[%d].secret_file", i+1)
		b, err := os.ReadFile(w.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", c.File, key, err)
		}
		secret := strings.TrimSpace(string(b))
		if len(secret) < minWebhookSecret {
			return nil, fmt.Errorf("%s: %s: %s holds %d characters; use a random secret of at least %d (e.g. 'openssl rand -hex 32')",
				c.File, key, w.SecretFile, len(secret), minWebhookSecret)
		}
		if fi, err := os.Stat(w.SecretFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("webhook secret file is readable by others; chmod 600 it", "key", key, "file", w.SecretFile)
		}
		out[w.Name] = webhook.Endpoint{Name: w.Name, URL: w.URL, Secret: []byte(secret), Timeout: w.Timeout}
	}
	return out, nil
}

// startWebhooks runs the webhook worker; stop ends it and waits for the
// attempts under way.
func startWebhooks(ctx context.Context, c *config.Config, db *store.DB, log *slog.Logger) (w *webhook.Worker, stop func(), err error) {
	eps, err := webhookEndpoints(c, log)
	if err != nil {
		return nil, nil, err
	}
	w = &webhook.Worker{Queue: db, Endpoints: eps, MaxAge: c.Delivery.MaxAge, Now: now, Log: log.With("part", "webhook")}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	return w, func() {
		cancel()
		if err := <-done; err != nil {
			log.Error("webhook worker", "err", err)
		}
	}, nil
}

// cmdWebhook implements "cvd webhook list|retry".
func cmdWebhook(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("webhook: use 'cvd webhook list' or 'cvd webhook retry ID': %w", errUsage)
	}
	sub := args[0]
	fs := newFlags("webhook " + sub)
	cfgPath := fs.String("config", "", "configuration file")
	all := fs.Bool("all", false, "list: include delivered events")
	pos, err := splitArgs(fs, args[1:])
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch sub {
	case "list":
		if len(pos) > 0 {
			return fmt.Errorf("webhook list: unexpected argument %q: %w", pos[0], errUsage)
		}
	case "retry":
		if len(pos) != 1 {
			return fmt.Errorf("webhook retry: give one event row ID (see 'cvd webhook list'): %w", errUsage)
		}
		id, err := strconv.ParseInt(pos[0], 10, 64)
		if err != nil || id <= 0 {
			return fmt.Errorf("webhook retry: %q is not a row ID (see 'cvd webhook list'): %w", pos[0], errUsage)
		}
		_, db, err := openDB(ctx, *cfgPath, true)
		if err != nil {
			return err
		}
		defer db.Close()
		if err := db.RetryWebhook(ctx, id, now()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "webhook row %d is due now\n", id)
		return nil
	default:
		return fmt.Errorf("webhook: unknown subcommand %q; use list or retry: %w", sub, errUsage)
	}
	_, db, err := openDB(ctx, *cfgPath, true)
	if err != nil {
		return err
	}
	defer db.Close()
	var states []string
	if !*all {
		states = []string{store.QueueQueued, store.QueueSending, store.QueueDeferred, store.QueueFailed}
	}
	rows, err := db.ListWebhooks(ctx, states, 200)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tENDPOINT\tEVENT\tSTATE\tATTEMPTS\tNEXT TRY\tLAST REPLY")
	for _, r := range rows {
		next, reply := nextTry(r.State, r.NextAttempt), shortReply(r.LastReply)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.Endpoint, r.EventID, r.State, r.Attempts, next, dash(reply))
	}
	return tw.Flush()
}
