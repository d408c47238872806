package embargo

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/cvd-project/cvd/deps"
	"github.com/cvd-project/cvd/store"
)

// CheckDependencies runs a dependency check, records its matches (see
// RecordDependencies) and withdrawn advisories (RecordWithdrawn), and the
// time of the check.
func (d *Desk) CheckDependencies(ctx context.Context, c *deps.Check) (*deps.Result, *DependencyResult, error) {
	res, err := c.Run(ctx)
	if err != nil {
		return nil, nil, err
	}
	rec, err := d.RecordDependencies(ctx, res.Matches)
	if err != nil {
		return res, rec, err
	}
	if rec.Withdrawn, err = d.RecordWithdrawn(ctx, res.Withdrawn); err != nil {
		return res, rec, err
	}
	summary := fmt.Sprintf("%d components, %d advisories, %d matched, %d incidents opened, %d withdrawn", len(res.Components), res.Advisories,
		len(res.Matches), rec.Opened(), len(rec.Withdrawn))
	err = d.DB.Write(ctx, func(tx *sql.Tx) error { return store.SetDependencyCheckTx(ctx, tx, d.now(), summary) })
	return res, rec, err
}

// DependencyWatch runs the dependency check every Every, by the desk's
// clock; the time of the last check is kept in the database, so a restart
// neither repeats a check nor skips one that is due.
type DependencyWatch struct {
	Desk  *Desk
	Check func() *deps.Check
	Every time.Duration
	// Poll bounds the sleep between looks at the clock (default 1m); a
	// failed check is tried again after RetryAfter (default 1h).
	Poll, RetryAfter time.Duration
	// Done, when set, is called after a check opened incidents.
	Done func()
}

// Due returns when the next check is due (the zero time: now).
func (w *DependencyWatch) Due(ctx context.Context) (time.Time, error) {
	var last time.Time
	err := w.Desk.DB.Read(ctx, func(tx *sql.Tx) (err error) {
		last, _, err = store.LastDependencyCheckTx(ctx, tx)
		return err
	})
	if err != nil || last.IsZero() {
		return time.Time{}, err
	}
	return last.Add(w.Every), nil
}

// Run checks whenever due until ctx ends.
func (w *DependencyWatch) Run(ctx context.Context) {
	poll, retry := w.Poll, w.RetryAfter
	if poll <= 0 {
		poll = time.Minute
	}
	if retry <= 0 {
		retry = time.Hour
	}
	log := w.Desk.log()
	var failedAt, told time.Time
	for {
		wait := poll
		due, err := w.Due(ctx)
		now := w.Desk.now()
		switch {
		case err != nil:
			log.Error("dependency check", "err", err)
		case !failedAt.IsZero() && now.Before(failedAt.Add(retry)):
		case !now.Before(due):
			res, rec, err := w.Desk.CheckDependencies(ctx, w.Check())
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				failedAt = now
				log.Error("dependency check failed; trying again later", "retry_in", retry.String(), "err", err)
				break
			}
			failedAt = time.Time{}
			if res.Skipped != nil {
				log.Warn("dependency check: OSV records skipped", "err", res.Skipped)
			}
			log.Info("dependency check", "components", len(res.Components), "advisories", res.Advisories, "matched", len(res.Matches),
				"opened", rec.Opened(), "new_matches", rec.Added())
			if rec.Opened()+rec.Added()+len(rec.Withdrawn) > 0 && w.Done != nil {
				w.Done()
			}
			continue
		default:
			if !due.Equal(told) {
				log.Info("next dependency check", "at", due.UTC().Format(time.RFC3339))
				told = due
			}
			wait = min(poll, due.Sub(now)+10*time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
