package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// WebhookEvent is one event to post to one endpoint.
type WebhookEvent struct {
	ID          int64
	Endpoint    string
	EventID     string
	Kind        string
	Ref         string
	Body        []byte
	State       string
	Attempts    int
	NextAttempt time.Time
	LastReply   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// EnqueueWebhookTx queues the event for each endpoint inside tx, so that
// it commits with the change it reports. An event already queued for an
// endpoint (same event ID) is not queued again; it returns how many rows
// were added.
func EnqueueWebhookTx(ctx context.Context, tx *sql.Tx, endpoints []string, eventID, kind, ref string, body []byte, now time.Time) (int, error) {
	if eventID == "" || len(body) == 0 {
		return 0, errors.New("enqueue webhook: empty event")
	}
	ms := now.UnixMilli()
	n := 0
	for _, ep := range endpoints {
		res, err := tx.ExecContext(ctx, `INSERT INTO webhook (endpoint, event_id, kind, ref, body, next_attempt_at, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (endpoint, event_id) DO NOTHING`, ep, eventID, kind, ref, body, ms, ms, ms)
		if err != nil {
			return n, fmt.Errorf("enqueue webhook %s for %s: %w", eventID, ep, err)
		}
		k, _ := res.RowsAffected()
		n += int(k)
	}
	return n, nil
}

// RecoverWebhooks hands rows left in sending (a crash, a kill) back to
// the queue, due at once; the receiver may see the event twice and drops
// the repeat by its ID.
func (db *DB) RecoverWebhooks(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhook SET state = 'queued', next_attempt_at = MIN(next_attempt_at, ?1), updated_at = ?1
			WHERE state = 'sending'`, now.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("recover webhooks: %w", err)
	}
	return int(n), nil
}

const webhookColumns = `id, endpoint, event_id, kind, ref, body, state, attempts, next_attempt_at, last_reply, created_at, updated_at`

func scanWebhook(s interface{ Scan(...any) error }) (*WebhookEvent, error) {
	var e WebhookEvent
	var next, created, updated int64
	if err := s.Scan(&e.ID, &e.Endpoint, &e.EventID, &e.Kind, &e.Ref, &e.Body, &e.State, &e.Attempts, &next, &e.LastReply, &created, &updated); err != nil {
		return nil, err
	}
	e.NextAttempt = time.UnixMilli(next).UTC()
	e.CreatedAt = time.UnixMilli(created).UTC()
	e.UpdatedAt = time.UnixMilli(updated).UTC()
	return &e, nil
}

// ClaimWebhooks marks up to limit due rows as sending and returns them,
// oldest first.
func (db *DB) ClaimWebhooks(ctx context.Context, now time.Time, limit int) ([]WebhookEvent, error) {
	var out []WebhookEvent
	err := db.Write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE webhook SET state = 'sending', updated_at = ?1 WHERE id IN (
			SELECT id FROM webhook WHERE state IN ('queued', 'deferred') AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2)
			RETURNING `+webhookColumns, now.UnixMilli(), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanWebhook(rows)
			if err != nil {
				return err
			}
			out = append(out, *e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("claim webhooks: %w", err)
	}
	return out, nil
}

// RecordWebhook stores the outcome of one attempt on a row still in
// sending: QueueSent, QueueDeferred (due again at next) or QueueFailed.
func (db *DB) RecordWebhook(ctx context.Context, id int64, state string, next time.Time, reply string, now time.Time) error {
	switch state {
	case QueueSent, QueueFailed:
		next = now
	case QueueDeferred:
	default:
		return fmt.Errorf("record webhook %d: %q is not an outcome", id, state)
	}
	err := db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE webhook SET state = ?, attempts = attempts + 1, next_attempt_at = ?, last_reply = ?, updated_at = ?
			WHERE id = ? AND state = 'sending'`, state, next.UnixMilli(), truncate(reply, maxReplyLen), now.UnixMilli(), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("record webhook %d: %w", id, err)
	}
	return nil
}

// NextWebhookDue returns when the earliest waiting row is due; ok is
// false when none waits.
func (db *DB) NextWebhookDue(ctx context.Context) (due time.Time, ok bool, err error) {
	err = db.Read(ctx, func(tx *sql.Tx) error {
		var ms sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MIN(next_attempt_at) FROM webhook WHERE state IN ('queued', 'deferred')`).Scan(&ms); err != nil {
			return err
		}
		if ms.Valid {
			due, ok = time.UnixMilli(ms.Int64).UTC(), true
		}
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next webhook due: %w", err)
	}
	return due, ok, nil
}

// ListWebhooks returns the rows in the given states (all when none),
// in ID order, at most limit.
func (db *DB) ListWebhooks(ctx context.Context, states []string, limit int) ([]WebhookEvent, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []WebhookEvent
	err := db.Read(ctx, func(tx *sql.Tx) error {
		q := `SELECT ` + webhookColumns + ` FROM webhook`
		var args []any
		if len(states) > 0 {
			q += ` WHERE state IN (?` + strings.Repeat(", ?", len(states)-1) + `)`
			for _, s := range states {
				args = append(args, s)
			}
		}
		rows, err := tx.QueryContext(ctx, q+` ORDER BY id LIMIT ?`, append(args, limit)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanWebhook(rows)
			if err != nil {
				return err
			}
			out = append(out, *e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return out, nil
}

// RetryWebhook makes a queued, deferred or failed row due now.
func (db *DB) RetryWebhook(ctx context.Context, id int64, now time.Time) error {
	err := db.Write(ctx, func(tx *sql.Tx) error {
		var state string
		err := tx.QueryRowContext(ctx, `SELECT state FROM webhook WHERE id = ?`, id).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if state != QueueQueued && state != QueueDeferred && state != QueueFailed {
			return fmt.Errorf("row is %s; only queued, deferred or failed events can be retried: %w", state, ErrQueueState)
		}
		_, err = tx.ExecContext(ctx, `UPDATE webhook SET state = 'queued', next_attempt_at = ?1, updated_at = ?1 WHERE id = ?2`, now.UnixMilli(), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("retry webhook %d: %w", id, err)
	}
	return nil
}
