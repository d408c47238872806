package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// PublicKey is an OpenPGP public key as the key store keeps it. The crypto
// package fills it from a parsed key; the store does not parse keys.
type PublicKey struct {
	Fingerprint string
	Armored     []byte
	Created     time.Time
	Expires     time.Time // zero: never
	Revoked     bool
}

// KeyEvent is one change of the key pinned for an address.
type KeyEvent struct {
	Email          string
	At             time.Time
	Kind           string // pinned, replaced, refreshed, unpinned
	OldFingerprint string
	NewFingerprint string
	Actor          string
	Reason         string
}

// PinnedError is returned by PinKey when the address already has another
// key pinned; changing it takes ReplaceKey.
type PinnedError struct {
	Email       string
	Fingerprint string
}

func (e *PinnedError) Error() string {
	return fmt.Sprintf("%s already has key %s pinned", e.Email, e.Fingerprint)
}

// KeyChange says who changes a pin and why, for the history.
type KeyChange struct {
	At     time.Time
	Actor  string
	Reason string
}

// PinKeyTx pins key for email inside tx. Pinning the key already pinned
// refreshes its stored copy (new expiry, revocation, subkeys) and records a
// "refreshed" event when it changed. A different pinned key is left alone
// and *PinnedError is returned.
func PinKeyTx(ctx context.Context, tx *sql.Tx, email string, key PublicKey, ch KeyChange) error {
	return pinKey(ctx, tx, email, key, ch, false)
}

// ReplaceKeyTx pins key for email inside tx, replacing any other pinned key;
// the replacement is recorded with the old and new fingerprints.
func ReplaceKeyTx(ctx context.Context, tx *sql.Tx, email string, key PublicKey, ch KeyChange) error {
	return pinKey(ctx, tx, email, key, ch, true)
}

// PinKey is PinKeyTx in a transaction of its own.
func (db *DB) PinKey(ctx context.Context, email string, key PublicKey, ch KeyChange) error {
	return db.Write(ctx, func(tx *sql.Tx) error { return PinKeyTx(ctx, tx, email, key, ch) })
}

// ReplaceKey is ReplaceKeyTx in a transaction of its own.
func (db *DB) ReplaceKey(ctx context.Context, email string, key PublicKey, ch KeyChange) error {
	return db.Write(ctx, func(tx *sql.Tx) error { return ReplaceKeyTx(ctx, tx, email, key, ch) })
}

func normalizeEmail(email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	if at := strings.LastIndexByte(e, '@'); at <= 0 || at == len(e)-1 {
		return "", fmt.Errorf("%q is not an email address", email)
	}
	return e, nil
}

func pinKey(ctx context.Context, tx *sql.Tx, email string, key PublicKey, ch KeyChange, replace bool) error {
	e, err := normalizeEmail(email)
	if err != nil {
		return fmt.Errorf("pin key: %w", err)
	}
	fp := strings.ToUpper(key.Fingerprint)
	if fp == "" || len(key.Armored) == 0 {
		return fmt.Errorf("pin key for %s: empty key", e)
	}
	if err := putKey(ctx, tx, fp, key, ch.At); err != nil {
		return fmt.Errorf("pin key %s for %s: %w", fp, e, err)
	}
	var cur string
	err = tx.QueryRowContext(ctx, `SELECT fingerprint FROM key_pin WHERE email = ?`, e).Scan(&cur)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO key_pin (email, fingerprint, pinned_at) VALUES (?, ?, ?)`, e, fp, ch.At.UnixMilli()); err != nil {
			return fmt.Errorf("pin key %s for %s: %w", fp, e, err)
		}
		return addKeyEvent(ctx, tx, KeyEvent{Email: e, At: ch.At, Kind: "pinned", NewFingerprint: fp, Actor: ch.Actor, Reason: ch.Reason})
	case err != nil:
		return fmt.Errorf("pin key %s for %s: %w", fp, e, err)
	case cur == fp:
		return nil
	case !replace:
		return &PinnedError{Email: e, Fingerprint: cur}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE key_pin SET fingerprint = ?, pinned_at = ? WHERE email = ?`, fp, ch.At.UnixMilli(), e); err != nil {
		return fmt.Errorf("replace key for %s: %w", e, err)
	}
	return addKeyEvent(ctx, tx, KeyEvent{Email: e, At: ch.At, Kind: "replaced", OldFingerprint: cur, NewFingerprint: fp, Actor: ch.Actor, Reason: ch.Reason})
}

// putKey stores or updates a key; an update of a pinned key is recorded as
// a refresh for each address it is pinned to.
func putKey(ctx context.Context, tx *sql.Tx, fp string, key PublicKey, at time.Time) error {
	var old []byte
	err := tx.QueryRowContext(ctx, `SELECT armored FROM pgp_key WHERE fingerprint = ?`, fp).Scan(&old)
	var exp int64
	if !key.Expires.IsZero() {
		exp = key.Expires.UnixMilli()
	}
	if errors.Is(err, sql.ErrNoRows) {
		_, err = tx.ExecContext(ctx, `INSERT INTO pgp_key (fingerprint, armored, created_at, expires_at, revoked, first_seen, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			fp, key.Armored, key.Created.UnixMilli(), exp, key.Revoked, at.UnixMilli(), at.UnixMilli())
		return err
	}
	if err != nil || bytes.Equal(old, key.Armored) {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE pgp_key SET armored = ?, expires_at = ?, revoked = ?, updated_at = ? WHERE fingerprint = ?`,
		key.Armored, exp, key.Revoked, at.UnixMilli(), fp); err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT email FROM key_pin WHERE fingerprint = ?`, fp)
	if err != nil {
		return err
	}
	var emails []string
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			rows.Close()
			return err
		}
		emails = append(emails, e)
	}
	rows.Close()
	for _, e := range emails {
		if err := addKeyEvent(ctx, tx, KeyEvent{Email: e, At: at, Kind: "refreshed", OldFingerprint: fp, NewFingerprint: fp, Actor: "cvd", Reason: "updated copy of the pinned key"}); err != nil {
			return err
		}
	}
	return nil
}

func addKeyEvent(ctx context.Context, tx *sql.Tx, ev KeyEvent) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO key_event (email, at, kind, old_fingerprint, new_fingerprint, actor, reason) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		ev.Email, ev.At.UnixMilli(), ev.Kind, ev.OldFingerprint, ev.NewFingerprint, ev.Actor, ev.Reason)
	if err != nil {
		return fmt.Errorf("record key event for %s: %w", ev.Email, err)
	}
	return nil
}

// UnpinKeyTx removes the pin of email, recording why. The key itself stays.
func UnpinKeyTx(ctx context.Context, tx *sql.Tx, email string, ch KeyChange) error {
	e, err := normalizeEmail(email)
	if err != nil {
		return fmt.Errorf("unpin key: %w", err)
	}
	var cur string
	err = tx.QueryRowContext(ctx, `DELETE FROM key_pin WHERE email = ? RETURNING fingerprint`, e).Scan(&cur)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("unpin key for %s: %w", e, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("unpin key for %s: %w", e, err)
	}
	return addKeyEvent(ctx, tx, KeyEvent{Email: e, At: ch.At, Kind: "unpinned", OldFingerprint: cur, Actor: ch.Actor, Reason: ch.Reason})
}

// PinnedKeyTx returns the key pinned for email, or ErrNotFound.
func PinnedKeyTx(ctx context.Context, tx *sql.Tx, email string) (*PublicKey, error) {
	e, err := normalizeEmail(email)
	if err != nil {
		return nil, fmt.Errorf("pinned key: %w", err)
	}
	var k PublicKey
	var created, exp int64
	err = tx.QueryRowContext(ctx, `SELECT k.fingerprint, k.armored, k.created_at, k.expires_at, k.revoked
		FROM key_pin p JOIN pgp_key k ON k.fingerprint = p.fingerprint WHERE p.email = ?`, e).
		Scan(&k.Fingerprint, &k.Armored, &created, &exp, &k.Revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("pinned key for %s: %w", e, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pinned key for %s: %w", e, err)
	}
	k.Created = time.UnixMilli(created).UTC()
	if exp != 0 {
		k.Expires = time.UnixMilli(exp).UTC()
	}
	return &k, nil
}

// PinnedKey returns the key pinned for email, or ErrNotFound.
func (db *DB) PinnedKey(ctx context.Context, email string) (*PublicKey, error) {
	var k *PublicKey
	err := db.Read(ctx, func(tx *sql.Tx) (err error) {
		k, err = PinnedKeyTx(ctx, tx, email)
		return err
	})
	return k, err
}

// KeyHistory returns every pin change of email, oldest first.
func (db *DB) KeyHistory(ctx context.Context, email string) ([]KeyEvent, error) {
	e, err := normalizeEmail(email)
	if err != nil {
		return nil, fmt.Errorf("key history: %w", err)
	}
	var out []KeyEvent
	err = db.Read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT email, at, kind, old_fingerprint, new_fingerprint, actor, reason FROM key_event WHERE email = ? ORDER BY id`, e)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var ev KeyEvent
			var at int64
			if err := rows.Scan(&ev.Email, &at, &ev.Kind, &ev.OldFingerprint, &ev.NewFingerprint, &ev.Actor, &ev.Reason); err != nil {
				return err
			}
			ev.At = time.UnixMilli(at).UTC()
			out = append(out, ev)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("key history of %s: %w", e, err)
	}
	return out, nil
}
