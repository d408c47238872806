package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// OperatorEvent is one thing an operator did outside an incident's
// timeline.
type OperatorEvent struct {
	At      time.Time
	Actor   string // "cli:NAME"
	Action  string // "queue retry", "triage drop", "member password", ...
	Subject string // the row, report or address acted on
	Detail  string
}

// AddOperatorEventTx records e.
func AddOperatorEventTx(ctx context.Context, tx *sql.Tx, e *OperatorEvent) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO operator_event (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)`,
		e.At.UnixMilli(), e.Actor, e.Action, e.Subject, e.Detail)
	if err != nil {
		return fmt.Errorf("record %s of %s: %w", e.Action, e.Subject, err)
	}
	return nil
}

// AddOperatorEvent records e in a transaction of its own.
func (db *DB) AddOperatorEvent(ctx context.Context, e *OperatorEvent) error {
	return db.Write(ctx, func(tx *sql.Tx) error { return AddOperatorEventTx(ctx, tx, e) })
}

// OperatorEvents returns the newest limit events (all when limit <= 0),
// oldest first.
func (db *DB) OperatorEvents(ctx context.Context, limit int) ([]OperatorEvent, error) {
	if limit <= 0 {
		limit = -1
	}
	var out []OperatorEvent
	err := db.Read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT at, actor, action, subject, detail FROM
			(SELECT * FROM operator_event ORDER BY id DESC LIMIT ?) ORDER BY id`, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e OperatorEvent
			var at int64
			if err := rows.Scan(&at, &e.Actor, &e.Action, &e.Subject, &e.Detail); err != nil {
				return err
			}
			e.At = time.UnixMilli(at).UTC()
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("operator events: %w", err)
	}
	return out, nil
}
