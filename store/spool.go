package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/cvd-project/cvd/mailauth"
)

// Envelope is the SMTP envelope and connection facts of a received message.
type Envelope struct {
	ReceivedAt time.Time
	RemoteAddr string
	Helo       string
	MailFrom   string
	Rcpts      []string
	TLS        bool
	// Auth is the sender authentication checked on receipt (SPF, DKIM,
	// DMARC); unchecked for mail received before cvd checked it.
	Auth mailauth.Results
}

// SpooledMessage is one row of the spool.
type SpooledMessage struct {
	ID int64
	Envelope
	Raw   []byte
	State string
}

// ErrNotFound is returned when a row does not exist.
var ErrNotFound = errors.New("not found")

// Spool stores a received message durably and returns its spool ID. When it
// returns nil the message is on disk (synchronous=FULL, WAL).
func (db *DB) Spool(ctx context.Context, env Envelope, raw []byte) (int64, error) {
	return db.SpoolPieces(ctx, env, [][]byte{raw})
}

// SpooledMessage returns the spool row id.
func (db *DB) SpooledMessage(ctx context.Context, id int64) (*SpooledMessage, error) {
	m := &SpooledMessage{ID: id}
	err := db.Read(ctx, func(tx *sql.Tx) error {
		var ms, size int64
		err := tx.QueryRowContext(ctx,
			`SELECT received_at, remote_addr, helo, mail_from, tls, raw, size, state, auth FROM spool WHERE id = ?`, id).
			Scan(&ms, &m.RemoteAddr, &m.Helo, &m.MailFrom, &m.TLS, &m.Raw, &size, &m.State, &m.Auth)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		m.ReceivedAt = time.UnixMilli(ms).UTC()
		if m.Raw, err = spoolPieces.fillTx(ctx, tx, id, m.Raw, size); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT rcpt FROM spool_rcpt WHERE spool_id = ? ORDER BY rcpt`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r string
			if err := rows.Scan(&r); err != nil {
				return err
			}
			m.Rcpts = append(m.Rcpts, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read spooled message %d: %w", id, err)
	}
	return m, nil
}

// SpoolSummary is a spool row without its content.
type SpoolSummary struct {
	ID         int64
	ReceivedAt time.Time
	MailFrom   string
	Rcpts      string
	Size       int64
	State      string
	// PurgedAt is when retention emptied the raw message (zero while
	// it is kept).
	PurgedAt time.Time
}

// ListSpool returns the newest limit spool rows, newest first.
func (db *DB) ListSpool(ctx context.Context, limit int) ([]SpoolSummary, error) {
	var out []SpoolSummary
	err := db.Read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `
			SELECT s.id, s.received_at, s.mail_from, s.size, s.state, s.purged_at,
			       COALESCE((SELECT group_concat(rcpt, ', ') FROM spool_rcpt r WHERE r.spool_id = s.id), '')
			FROM spool s ORDER BY s.id DESC LIMIT ?`, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s SpoolSummary
			var ms, purged int64
			if err := rows.Scan(&s.ID, &ms, &s.MailFrom, &s.Size, &s.State, &purged, &s.Rcpts); err != nil {
				return err
			}
			s.ReceivedAt = time.UnixMilli(ms).UTC()
			if purged != 0 {
				s.PurgedAt = time.UnixMilli(purged).UTC()
			}
			out = append(out, s)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list spool: %w", err)
	}
	return out, nil
}

// Spool states.
const (
	SpoolNew    = "new"
	SpoolDone   = "done"
	SpoolFailed = "failed"
)

// PendingRcpt is a recipient of a spooled message still to be routed.
type PendingRcpt struct {
	SpoolID int64
	Rcpt    string
}

// PendingSpool returns up to limit recipients still to route, of spooled
// messages with an ID above after, oldest first.
func (db *DB) PendingSpool(ctx context.Context, after int64, limit int) ([]PendingRcpt, error) {
	var out []PendingRcpt
	err := db.Read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT spool_id, rcpt FROM spool_rcpt WHERE state = 'new' AND spool_id > ? ORDER BY spool_id, rcpt LIMIT ?`, after, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var p PendingRcpt
			if err := rows.Scan(&p.SpoolID, &p.Rcpt); err != nil {
				return err
			}
			out = append(out, p)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("pending spool: %w", err)
	}
	return out, nil
}

// MarkRcptTx records that one recipient of a spooled message was routed
// (state done or failed, with the reason for operators; never content).
// The message is done once no recipient is left, failed if any failed.
func MarkRcptTx(ctx context.Context, tx *sql.Tx, spoolID int64, rcpt, state, reason string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE spool_rcpt SET state = ?, reason = ? WHERE spool_id = ? AND rcpt = ?`, state, reason, spoolID, rcpt); err != nil {
		return fmt.Errorf("mark spool %d for %s: %w", spoolID, rcpt, err)
	}
	_, err := tx.ExecContext(ctx, `UPDATE spool SET state = CASE
			WHEN EXISTS (SELECT 1 FROM spool_rcpt WHERE spool_id = ?1 AND state = 'failed') THEN 'failed' ELSE 'done' END,
			error = (SELECT COALESCE(group_concat(rcpt || ': ' || reason, '; '), '') FROM spool_rcpt WHERE spool_id = ?1 AND state = 'failed')
		WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM spool_rcpt WHERE spool_id = ?1 AND state = 'new')`, spoolID)
	if err != nil {
		return fmt.Errorf("mark spool %d: %w", spoolID, err)
	}
	return nil
}
