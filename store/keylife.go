package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// ExpiringKey is a pinned key that expires soon.
type ExpiringKey struct {
	Email       string
	Fingerprint string
	Expires     time.Time
	// ListID is 0 for a key pinned for the address, else a list the key
	// is trusted on only (list_key), with the address an active member.
	ListID int64
}

// trustedKeys are the keys cvd uses: pinned ones, and those trusted on
// one list for an active member of it.
const trustedKeys = `(SELECT email, fingerprint, 0 AS list_id FROM key_pin
	UNION ALL SELECT l.email, l.fingerprint, l.list_id FROM list_key l
	JOIN member m ON m.list_id = l.list_id AND m.email = l.email AND m.state = 'active')`

// ExpiringKeysTx returns the trusted (pinned or list), unrevoked keys that expire after from
// and no later than until, for which no warning was recorded yet.
func ExpiringKeysTx(ctx context.Context, tx *sql.Tx, from, until time.Time) ([]ExpiringKey, error) {
	rows, err := tx.QueryContext(ctx, `SELECT p.email, k.fingerprint, k.expires_at, MIN(p.list_id) FROM `+trustedKeys+` p
		JOIN pgp_key k ON k.fingerprint = p.fingerprint
		WHERE k.revoked = 0 AND k.expires_at > ? AND k.expires_at <= ?
		AND NOT EXISTS (SELECT 1 FROM key_expiry_notice n WHERE n.email = p.email AND n.fingerprint = k.fingerprint AND n.expires_at = k.expires_at)
		GROUP BY p.email, k.fingerprint, k.expires_at
		ORDER BY k.expires_at, p.email`, from.UnixMilli(), until.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("expiring keys: %w", err)
	}
	defer rows.Close()
	var out []ExpiringKey
	for rows.Next() {
		var k ExpiringKey
		var exp int64
		if err := rows.Scan(&k.Email, &k.Fingerprint, &exp, &k.ListID); err != nil {
			return nil, fmt.Errorf("expiring keys: %w", err)
		}
		k.Expires = time.UnixMilli(exp).UTC()
		out = append(out, k)
	}
	return out, rows.Err()
}

// NextKeyExpiryTx is the earliest expiry after from of a trusted, unrevoked
// key not yet warned about (zero: none).
func NextKeyExpiryTx(ctx context.Context, tx *sql.Tx, from time.Time) (time.Time, error) {
	var exp sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT min(k.expires_at) FROM `+trustedKeys+` p JOIN pgp_key k ON k.fingerprint = p.fingerprint
		WHERE k.revoked = 0 AND k.expires_at > ?
		AND NOT EXISTS (SELECT 1 FROM key_expiry_notice n WHERE n.email = p.email AND n.fingerprint = k.fingerprint AND n.expires_at = k.expires_at)`,
		from.UnixMilli()).Scan(&exp)
	if err != nil || !exp.Valid {
		return time.Time{}, err
	}
	return time.UnixMilli(exp.Int64).UTC(), nil
}

// MarkKeyExpiryNoticeTx records that the warning about k was sent.
func MarkKeyExpiryNoticeTx(ctx context.Context, tx *sql.Tx, k ExpiringKey, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO key_expiry_notice (email, fingerprint, expires_at, sent_at) VALUES (?, ?, ?, ?)`,
		k.Email, k.Fingerprint, k.Expires.UnixMilli(), at.UnixMilli())
	if err != nil {
		return fmt.Errorf("record key expiry notice for %s: %w", k.Email, err)
	}
	return nil
}

// ProjectKeyEvent is a rotation or revocation of the project key.
type ProjectKeyEvent struct {
	ID             int64
	At             time.Time
	Kind           string // rotated, revoked
	Fingerprint    string
	NewFingerprint string
	Actor          string
	Reason         string
}

// AddProjectKeyEventTx records e and returns its ID.
func AddProjectKeyEventTx(ctx context.Context, tx *sql.Tx, e *ProjectKeyEvent) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO project_key_event (at, kind, fingerprint, new_fingerprint, actor, reason) VALUES (?, ?, ?, ?, ?, ?)`,
		e.At.UnixMilli(), e.Kind, e.Fingerprint, e.NewFingerprint, e.Actor, e.Reason)
	if err != nil {
		return 0, fmt.Errorf("record project key %s: %w", e.Kind, err)
	}
	return res.LastInsertId()
}

// ProjectKeyEvents returns the project key's history, oldest first.
func (db *DB) ProjectKeyEvents(ctx context.Context) ([]ProjectKeyEvent, error) {
	var out []ProjectKeyEvent
	err := db.Read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, at, kind, fingerprint, new_fingerprint, actor, reason FROM project_key_event ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e ProjectKeyEvent
			var at int64
			if err := rows.Scan(&e.ID, &at, &e.Kind, &e.Fingerprint, &e.NewFingerprint, &e.Actor, &e.Reason); err != nil {
				return err
			}
			e.At = time.UnixMilli(at).UTC()
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("project key history: %w", err)
	}
	return out, nil
}

// ActiveMemberEmailsTx returns the address of every active member of any
// list (subscribers of the announce list included), sorted.
func ActiveMemberEmailsTx(ctx context.Context, tx *sql.Tx) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT email FROM member WHERE state = 'active' ORDER BY email`)
	if err != nil {
		return nil, fmt.Errorf("active members: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
