package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/ops"
	"github.com/cvd-project/cvd/store"
)

// retentionEvery is how often 'cvd serve' purges.
const retentionEvery = time.Hour

func cmdRetention(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "run" {
		return fmt.Errorf("retention: use 'cvd retention run [--dry-run]': %w", errUsage)
	}
	fs := newFlags("retention run")
	cfgPath := fs.String("config", "", "configuration file")
	dry := fs.Bool("dry-run", false, "only count what would be purged")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	ctx := context.Background()
	c, db, err := openDB(ctx, *cfgPath, true)
	if err != nil {
		return err
	}
	defer db.Close()
	r := &ops.Retention{DB: db, Config: c.Retention, Now: now}
	p, err := r.Run(ctx, *dry)
	if err != nil {
		return err
	}
	space, err := db.SpaceUsed(ctx)
	if err != nil {
		return err
	}
	verb := "purged"
	if *dry {
		verb = "would purge"
	}
	fmt.Fprintf(stdout, "%s %d spooled messages (%d bytes) older than %s and %d delivered bodies (%d bytes) older than %s\n",
		verb, p.SpoolMessages, p.SpoolBytes, human(c.Retention.Spool), p.QueueBodies, p.QueueBytes, human(c.Retention.Delivered))
	fmt.Fprintf(stdout, "database %s: %d bytes, %d in use (free pages are reused before the file grows)\n", db.Path(), space.File, space.InUse)
	return nil
}

func human(d time.Duration) string {
	if d == 0 {
		return "forever (never)"
	}
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// startRetention purges at once and then hourly while the server runs.
func startRetention(ctx context.Context, c config.Retention, db *store.DB, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	r := &ops.Retention{DB: db, Config: c, Now: now, Log: log.With("part", "retention")}
	fin := make(chan struct{})
	go func() {
		defer close(fin)
		r.Loop(ctx, retentionEvery)
	}()
	return func() {
		cancel()
		<-fin
	}
}
