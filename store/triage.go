package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Triaged is a report held in the triage queue instead of opening an
// incident.
type Triaged struct {
	ID         int64
	SpoolID    int64
	Rcpt       string
	ReceivedAt time.Time
	Sender     string
	Source     string
	Subject    string
	Size       int64
	Reason     string
	// Score is the spam score; HasScore is false when none was taken.
	Score    float64
	HasScore bool
	Digested bool
}

// AddTriageTx puts a report in the triage queue; a report already there
// keeps its row.
func AddTriageTx(ctx context.Context, tx *sql.Tx, t *Triaged) error {
	var score any
	if t.HasScore {
		score = t.Score
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO triage (spool_id, rcpt, received_at, sender, source, subject, size, reason, score)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (spool_id) DO NOTHING`,
		t.SpoolID, t.Rcpt, t.ReceivedAt.UnixMilli(), t.Sender, t.Source, t.Subject, t.Size, t.Reason, score)
	if err != nil {
		return fmt.Errorf("triage spool %d: %w", t.SpoolID, err)
	}
	return nil
}

const triageCols = `id, spool_id, rcpt, received_at, sender, source, subject, size, reason, score, digested`

func scanTriaged(sc interface{ Scan(...any) error }) (*Triaged, error) {
	t := &Triaged{}
	var ms int64
	var score sql.NullFloat64
	if err := sc.Scan(&t.ID, &t.SpoolID, &t.Rcpt, &ms, &t.Sender, &t.Source, &t.Subject, &t.Size, &t.Reason, &score, &t.Digested); err != nil {
		return nil, err
	}
	t.ReceivedAt = time.UnixMilli(ms).UTC()
	t.Score, t.HasScore = score.Float64, score.Valid
	return t, nil
}

// TriageTx returns the triage row id.
func TriageTx(ctx context.Context, tx *sql.Tx, id int64) (*Triaged, error) {
	t, err := scanTriaged(tx.QueryRowContext(ctx, `SELECT `+triageCols+` FROM triage WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("triage %d: %w", id, err)
	}
	return t, nil
}

// TriageListTx returns the waiting reports, oldest first.
func TriageListTx(ctx context.Context, tx *sql.Tx) ([]*Triaged, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+triageCols+` FROM triage ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list triage: %w", err)
	}
	defer rows.Close()
	var out []*Triaged
	for rows.Next() {
		t, err := scanTriaged(rows)
		if err != nil {
			return nil, fmt.Errorf("list triage: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// DeleteTriageTx removes a row from the triage queue.
func DeleteTriageTx(ctx context.Context, tx *sql.Tx, id int64) error {
	res, err := tx.ExecContext(ctx, `DELETE FROM triage WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete triage %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// TriageDigestTx returns when the last digest was sent (zero: never) and
// how many waiting reports no digest has listed yet.
func TriageDigestTx(ctx context.Context, tx *sql.Tx) (last time.Time, undigested int, err error) {
	var ms int64
	err = tx.QueryRowContext(ctx, `SELECT COALESCE((SELECT sent_at FROM triage_digest WHERE id = 1), 0),
		(SELECT COUNT(*) FROM triage WHERE digested = 0)`).Scan(&ms, &undigested)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("triage digest: %w", err)
	}
	if ms > 0 {
		last = time.UnixMilli(ms).UTC()
	}
	return last, undigested, nil
}

// MarkTriageDigestTx records a digest sent at t listing every waiting
// report.
func MarkTriageDigestTx(ctx context.Context, tx *sql.Tx, t time.Time) error {
	if _, err := tx.ExecContext(ctx, `UPDATE triage SET digested = 1 WHERE digested = 0`); err != nil {
		return fmt.Errorf("mark triage digest: %w", err)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO triage_digest (id, sent_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET sent_at = excluded.sent_at`, t.UnixMilli())
	if err != nil {
		return fmt.Errorf("mark triage digest: %w", err)
	}
	return nil
}

// IntakeRateTx counts the reports other than spoolID that opened an
// incident since since, from sender and from network ("" counts none).
func IntakeRateTx(ctx context.Context, tx *sql.Tx, spoolID int64, sender, network string, since time.Time) (bySender, byNetwork int, err error) {
	err = tx.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM intake_rate WHERE sender = ?1 AND at > ?3 AND spool_id != ?4),
		(SELECT COUNT(*) FROM intake_rate WHERE ?2 != '' AND network = ?2 AND at > ?3 AND spool_id != ?4)`,
		sender, network, since.UnixMilli(), spoolID).Scan(&bySender, &byNetwork)
	if err != nil {
		return 0, 0, fmt.Errorf("intake rate: %w", err)
	}
	return bySender, byNetwork, nil
}

// AddIntakeRateTx records that report spoolID opens an incident, and
// forgets reports from before forgetBefore.
func AddIntakeRateTx(ctx context.Context, tx *sql.Tx, spoolID int64, at time.Time, sender, network string, forgetBefore time.Time) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM intake_rate WHERE at < ?`, forgetBefore.UnixMilli()); err != nil {
		return fmt.Errorf("intake rate: %w", err)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO intake_rate (spool_id, at, sender, network) VALUES (?, ?, ?, ?) ON CONFLICT (spool_id) DO NOTHING`,
		spoolID, at.UnixMilli(), sender, network)
	if err != nil {
		return fmt.Errorf("intake rate: %w", err)
	}
	return nil
}
