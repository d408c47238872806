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
	vacuum := fs.Bool("vacuum", false, "then rebuild the database file to give the room back (writers wait meanwhile)")
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
	verb := "purged"
	if *dry {
		verb = "would purge"
	}
	fmt.Fprintf(stdout, "%s %d spooled messages (%d bytes) %s and %d delivered bodies (%d bytes) %s\n",
		verb, p.SpoolMessages, p.SpoolBytes, olderThan(c.Retention.Spool), p.QueueBodies, p.QueueBytes, olderThan(c.Retention.Delivered))
	before, err := db.SpaceUsed(ctx)
	if err != nil {
		return err
	}
	if *vacuum && !*dry {
		if err := db.Vacuum(ctx); err != nil {
			return err
		}
		after, err := db.SpaceUsed(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "database %s: %d bytes, %d after vacuum\n", db.Path(), before.File, after.File)
		return nil
	}
	fmt.Fprintf(stdout, "database %s: %d bytes (the room purged rows leave is given back by --vacuum)\n", db.Path(), before.File)
	return nil
}

func olderThan(d time.Duration) string {
	switch {
	case d == 0:
		return "(kept forever)"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("older than %dd", d/(24*time.Hour))
	}
	return "older than " + d.String()
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
