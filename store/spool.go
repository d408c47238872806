package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Envelope is the SMTP envelope and connection facts of a received message.
type Envelope struct {
	ReceivedAt time.Time
	RemoteAddr string
	Helo       string
	MailFrom   string
	Rcpts      []string
	TLS        bool
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
	var id int64
	err := db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`INSERT INTO spool (received_at, remote_addr, helo, mail_from, tls, size, raw) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			env.ReceivedAt.UnixMilli(), env.RemoteAddr, env.Helo, env.MailFrom, env.TLS, len(raw), raw)
		if err != nil {
			return err
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		for _, rcpt := range env.Rcpts {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO spool_rcpt (spool_id, rcpt) VALUES (?, ?)`, id, rcpt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("spool message from %q: %w", env.MailFrom, err)
	}
	return id, nil
}

// SpooledMessage returns the spool row id.
func (db *DB) SpooledMessage(ctx context.Context, id int64) (*SpooledMessage, error) {
	m := &SpooledMessage{ID: id}
	err := db.Read(ctx, func(tx *sql.Tx) error {
		var ms int64
		err := tx.QueryRowContext(ctx,
			`SELECT received_at, remote_addr, helo, mail_from, tls, raw, state FROM spool WHERE id = ?`, id).
			Scan(&ms, &m.RemoteAddr, &m.Helo, &m.MailFrom, &m.TLS, &m.Raw, &m.State)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		m.ReceivedAt = time.UnixMilli(ms).UTC()
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
}

// ListSpool returns the newest limit spool rows, newest first.
func (db *DB) ListSpool(ctx context.Context, limit int) ([]SpoolSummary, error) {
	var out []SpoolSummary
	err := db.Read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `
			SELECT s.id, s.received_at, s.mail_from, s.size, s.state,
			       COALESCE((SELECT group_concat(rcpt, ', ') FROM spool_rcpt r WHERE r.spool_id = s.id), '')
			FROM spool s ORDER BY s.id DESC LIMIT ?`, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s SpoolSummary
			var ms int64
			if err := rows.Scan(&s.ID, &ms, &s.MailFrom, &s.Size, &s.State, &s.Rcpts); err != nil {
				return err
			}
			s.ReceivedAt = time.UnixMilli(ms).UTC()
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

// PendingSpool returns up to limit spool IDs in state new, oldest first.
func (db *DB) PendingSpool(ctx context.Context, limit int) ([]int64, error) {
	var ids []int64
	err := db.Read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id FROM spool WHERE state = 'new' ORDER BY id LIMIT ?`, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("pending spool: %w", err)
	}
	return ids, nil
}

// MarkSpoolTx sets the state of a spooled message (done or failed, with
// the reason for operators; never message content).
func MarkSpoolTx(ctx context.Context, tx *sql.Tx, id int64, state, reason string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE spool SET state = ?, error = ? WHERE id = ?`, state, reason, id); err != nil {
		return fmt.Errorf("mark spool %d %s: %w", id, state, err)
	}
	return nil
}
