package ops

import (
	"context"
	"log/slog"
	"time"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/store"
)

// Retention purges, by the [retention] settings, the raw spooled mail and
// the delivered message bodies no one needs any more.
type Retention struct {
	DB     *store.DB
	Config config.Retention
	// Now is the clock the ages are measured with.
	Now func() time.Time
	Log *slog.Logger
}

// Run purges once (with dryRun, only counts) and returns what it emptied.
func (r *Retention) Run(ctx context.Context, dryRun bool) (store.Purged, error) {
	now := r.Now()
	var spool, delivered time.Time
	if r.Config.Spool > 0 {
		spool = now.Add(-r.Config.Spool)
	}
	if r.Config.Delivered > 0 {
		delivered = now.Add(-r.Config.Delivered)
	}
	return r.DB.Purge(ctx, spool, delivered, now, dryRun)
}

// Loop runs a purge at once and then every interval until ctx ends.
func (r *Retention) Loop(ctx context.Context, every time.Duration) {
	for {
		p, err := r.Run(ctx, false)
		switch {
		case err != nil && ctx.Err() == nil:
			r.Log.Error("retention", "err", err)
		case p.SpoolMessages+p.QueueBodies > 0:
			r.Log.Info("retention: purged", "spool_messages", p.SpoolMessages, "spool_bytes", p.SpoolBytes,
				"delivered_bodies", p.QueueBodies, "delivered_bytes", p.QueueBytes)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}
