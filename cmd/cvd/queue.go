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
	"time"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/mailauth"
	"github.com/cvd-project/cvd/mailserver"
	"github.com/cvd-project/cvd/store"
)

// cmdQueue implements "cvd queue list|retry|drop". It opens the database
// next to a running server (SQLite WAL); a retried row goes out at the
// worker's next look at the queue (within its poll interval).
func cmdQueue(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("queue: use 'cvd queue list', 'cvd queue retry ID' or 'cvd queue drop ID': %w", errUsage)
	}
	sub := args[0]
	fs := newFlags("queue " + sub)
	cfgPath := fs.String("config", "", "configuration file")
	var id int64
	var all *bool
	var limit *int
	rest := args[1:]
	switch sub {
	case "list":
		all = fs.Bool("all", false, "include delivered mail")
		limit = fs.Int("limit", 100, "number of rows to show")
	case "retry", "drop":
		// The ID may come before or after the flags.
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			rest = append(rest[1:len(rest):len(rest)], rest[0])
		}
		if len(rest) == 0 {
			return fmt.Errorf("queue %s: missing queue row ID (see 'cvd queue list'): %w", sub, errUsage)
		}
		last := rest[len(rest)-1]
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("queue %s: %q is not a queue row ID (see 'cvd queue list'): %w", sub, last, errUsage)
		}
		id, rest = n, rest[:len(rest)-1]
	default:
		return fmt.Errorf("queue: unknown subcommand %q; use list, retry or drop: %w", sub, errUsage)
	}
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	ctx := context.Background()
	_, db, err := openDB(ctx, *cfgPath, true)
	if err != nil {
		return err
	}
	defer db.Close()

	switch sub {
	case "retry":
		if err := db.RetryQueue(ctx, id, time.Now()); err != nil {
			return err
		}
		if err := db.AddOperatorEvent(ctx, &store.OperatorEvent{At: now(), Actor: cliActor(), Action: "queue retry", Subject: fmt.Sprintf("queue row %d", id)}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "queue row %d is due now\n", id)
		return nil
	case "drop":
		state, err := db.DropQueue(ctx, id)
		if err != nil {
			return err
		}
		if err := db.AddOperatorEvent(ctx, &store.OperatorEvent{At: now(), Actor: cliActor(), Action: "queue drop", Subject: fmt.Sprintf("queue row %d", id), Detail: "was " + state}); err != nil {
			return err
		}
		if state == store.QueueSending {
			fmt.Fprintf(stderr, "cvd: queue row %d was being sent; the attempt under way may still deliver it\n", id)
		}
		fmt.Fprintf(stdout, "queue row %d (%s) dropped\n", id, state)
		return nil
	}

	f := store.QueueFilter{Limit: *limit}
	if !*all {
		f.States = []string{store.QueueQueued, store.QueueSending, store.QueueDeferred, store.QueueFailed}
	}
	rows, err := db.ListQueue(ctx, f)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRECIPIENT\tSTATE\tATTEMPTS\tNEXT TRY\tLAST REPLY")
	for _, r := range rows {
		next, reply := nextTry(r.State, r.NextAttempt), shortReply(r.LastReply)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.Rcpt, r.State, r.Attempts, next, reply)
	}
	return tw.Flush()
}

// startDelivery starts the delivery worker on db's queue; stop ends it
// and waits for it. The worker is not yet told about bounces or failures
// of incident notices (no incidents yet): failures are only logged.
func startDelivery(ctx context.Context, c *config.Config, db *store.DB, outbox *mailserver.Maildir, svc *lists.Service, log *slog.Logger) (w *mailserver.DeliveryWorker, stop func(), err error) {
	opts, err := relayOptions(c)
	if err != nil {
		return nil, nil, err
	}
	opts.Outbox = outbox
	if c.Delivery.Mode == mailserver.ModeMX {
		resolver := mailauth.NewResolver(c.DNS.Resolver)
		opts.Resolver = resolver
		if c.Delivery.MTASTS {
			opts.MTASTS = &mailserver.MTASTS{Now: now, Resolver: resolver}
		}
		opts.RequireTLS = c.Delivery.RequireTLS
	}
	opts.MaxAge = c.Delivery.MaxAge
	opts.PerDestination = c.Delivery.PerDestination
	// Admin commands run in another process and cannot wake the worker:
	// what they queue waits at most this long.
	opts.PollInterval = 2 * time.Second
	opts.Logger = log
	opts.Now = now
	opts.OnFailure = func(ctx context.Context, f mailserver.FailedDelivery) {
		if err := svc.DeliveryFailed(ctx, f.Kind, f.Ref, f.Rcpt, f.Reply); err != nil {
			log.Error("record delivery failure", "queue_id", f.ID, "err", err)
		}
	}
	if opts.DKIM, err = dkimSigner(c); err != nil {
		return nil, nil, err
	}
	w, err = mailserver.NewDeliveryWorker(queueAdapter{db}, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: [delivery]: %w", c.File, err)
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	go func() {
		pctx, cancel := context.WithTimeout(wctx, 30*time.Second)
		defer cancel()
		w.ProbeRelay(pctx)
	}()
	stop = func() {
		cancel()
		if err := <-done; err != nil {
			log.Error("delivery worker", "err", err)
		}
	}
	return w, stop, nil
}

// queueAdapter gives the delivery worker the store's queue.
type queueAdapter struct{ db *store.DB }

func (q queueAdapter) Recover(ctx context.Context, now time.Time) (int, error) {
	return q.db.RecoverQueue(ctx, now)
}

func (q queueAdapter) Claim(ctx context.Context, now time.Time, limit int, maxBytes int64, skip []string) ([]mailserver.OutboundBatch, error) {
	bs, err := q.db.ClaimQueueBytes(ctx, now, limit, maxBytes, skip)
	if err != nil {
		return nil, err
	}
	out := make([]mailserver.OutboundBatch, len(bs))
	for i, b := range bs {
		rs := make([]mailserver.OutboundRcpt, len(b.Rcpts))
		for k, r := range b.Rcpts {
			rs[k] = mailserver.OutboundRcpt(r)
		}
		out[i] = mailserver.OutboundBatch{MessageID: b.MessageID, Domain: b.Domain, Kind: b.Kind, Ref: b.Ref, CreatedAt: b.CreatedAt,
			Raw: b.Raw, Open: b.Open, Size: b.Size, Rcpts: rs}
	}
	return out, nil
}

func (q queueAdapter) Record(ctx context.Context, now time.Time, rs []mailserver.DeliveryResult) error {
	out := make([]store.QueueOutcome, len(rs))
	for i, r := range rs {
		out[i] = store.QueueOutcome(r)
	}
	return q.db.RecordQueue(ctx, now, out)
}

func (q queueAdapter) NextDue(ctx context.Context) (time.Time, bool, error) {
	return q.db.NextQueueDue(ctx)
}

// dkimSigner loads the [dkim] keys; nil when signing is off.
func dkimSigner(c *config.Config) (*mailserver.DKIMSigner, error) {
	if !c.DKIM.Enabled {
		return nil, nil
	}
	var keys []mailserver.DKIMKey
	for _, k := range c.DKIM.Keys {
		s, err := mailserver.LoadDKIMKey(k.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s: [dkim] %s key: %w", c.File, k.Kind, err)
		}
		keys = append(keys, mailserver.DKIMKey{Selector: k.Selector, Signer: s})
	}
	s, err := mailserver.NewDKIMSigner(c.Domain, keys, c.DKIM.Headers)
	if err != nil {
		return nil, fmt.Errorf("%s: [dkim]: %w", c.File, err)
	}
	return s, nil
}

// relayOptions are the delivery options that say how to reach the relay.
func relayOptions(c *config.Config) (mailserver.DeliveryOptions, error) {
	opts := mailserver.DeliveryOptions{
		Mode:         c.Delivery.Mode,
		Hostname:     c.Hostname,
		Domain:       c.Domain,
		Smarthost:    c.Delivery.Smarthost,
		SmarthostTLS: c.Delivery.TLS,
		Username:     c.Delivery.Username,
	}
	var err error
	if c.Delivery.CAFile != "" || c.Delivery.ServerName != "" {
		if opts.TLSConfig, err = mailserver.RelayTLSConfig(c.Delivery.CAFile, c.Delivery.ServerName); err != nil {
			return opts, fmt.Errorf("%s: delivery.ca_file: %w", c.File, err)
		}
	}
	if c.Delivery.PasswordFile != "" {
		b, err := os.ReadFile(c.Delivery.PasswordFile)
		if err != nil {
			return opts, fmt.Errorf("%s: delivery.password_file: %w", c.File, err)
		}
		opts.Password = strings.TrimRight(string(b), "\r\n")
	}
	return opts, nil
}

// nextTry is when a waiting row of the queue (or of the webhook queue) is
// tried again, "-" for a row that does not wait.
func nextTry(state string, at time.Time) string {
	if state == store.QueueQueued || state == store.QueueDeferred {
		return at.Local().Format(time.DateTime)
	}
	return "-"
}

// shortReply is a last reply on one line, cut at 100 characters.
func shortReply(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}
