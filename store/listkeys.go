package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ListKey is a key trusted on one list only.
type ListKey struct {
	ListID int64
	Email  string
	Key    PublicKey
	// Source says where the key came from, e.g. "came with the report,
	// unverified" or "x-add-key by cora@example.org".
	Source string
	Actor  string
	At     time.Time
}

// SetListKeyTx trusts key for email on the list listID (named listName,
// for the history) only, replacing the list's previous key for email. The
// change is recorded in the key history; the global pin is not touched.
func SetListKeyTx(ctx context.Context, tx *sql.Tx, listID int64, listName, email string, key PublicKey, source string, ch KeyChange) error {
	e, err := normalizeEmail(email)
	if err != nil {
		return fmt.Errorf("list key: %w", err)
	}
	fp := strings.ToUpper(key.Fingerprint)
	if fp == "" || len(key.Armored) == 0 {
		return fmt.Errorf("list key for %s on %s: empty key", e, listName)
	}
	if err := putKey(ctx, tx, fp, key, ch.At); err != nil {
		return fmt.Errorf("list key %s for %s: %w", fp, e, err)
	}
	var cur string
	err = tx.QueryRowContext(ctx, `SELECT fingerprint FROM list_key WHERE list_id = ? AND email = ?`, listID, e).Scan(&cur)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("list key for %s on %s: %w", e, listName, err)
	}
	if cur == fp {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO list_key (list_id, email, fingerprint, source, actor, at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (list_id, email) DO UPDATE SET fingerprint = excluded.fingerprint, source = excluded.source, actor = excluded.actor, at = excluded.at`,
		listID, e, fp, source, ch.Actor, ch.At.UnixMilli()); err != nil {
		return fmt.Errorf("list key %s for %s on %s: %w", fp, e, listName, err)
	}
	ev := KeyEvent{Email: e, At: ch.At, Kind: "pinned", NewFingerprint: fp, Actor: ch.Actor,
		Reason: "on list " + listName + " only: " + source}
	if cur != "" {
		ev.Kind, ev.OldFingerprint = "replaced", cur
	}
	if ch.Reason != "" {
		ev.Reason += "; " + ch.Reason
	}
	return addKeyEvent(ctx, tx, ev)
}

// ListKeyTx returns the key trusted for email on list listID only, or
// ErrNotFound.
func ListKeyTx(ctx context.Context, tx *sql.Tx, listID int64, email string) (*ListKey, error) {
	e, err := normalizeEmail(email)
	if err != nil {
		return nil, fmt.Errorf("list key: %w", err)
	}
	lk := ListKey{ListID: listID, Email: e}
	var created, exp, at int64
	err = tx.QueryRowContext(ctx, `SELECT k.fingerprint, k.armored, k.created_at, k.expires_at, k.revoked, l.source, l.actor, l.at
		FROM list_key l JOIN pgp_key k ON k.fingerprint = l.fingerprint WHERE l.list_id = ? AND l.email = ?`, listID, e).
		Scan(&lk.Key.Fingerprint, &lk.Key.Armored, &created, &exp, &lk.Key.Revoked, &lk.Source, &lk.Actor, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("list key for %s: %w", e, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("list key for %s: %w", e, err)
	}
	lk.Key.Created = time.UnixMilli(created).UTC()
	if exp != 0 {
		lk.Key.Expires = time.UnixMilli(exp).UTC()
	}
	lk.At = time.UnixMilli(at).UTC()
	return &lk, nil
}

// KeyForListTx returns the key to use for email on list listID: the
// list's own key for the address when it has one, else the global pin,
// else ErrNotFound.
func KeyForListTx(ctx context.Context, tx *sql.Tx, listID int64, email string) (*PublicKey, error) {
	lk, err := ListKeyTx(ctx, tx, listID, email)
	if err == nil {
		return &lk.Key, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	return PinnedKeyTx(ctx, tx, email)
}

// DropListKeysTx removes every list-only key of email (the configuration
// is authoritative for it), recording why; it returns the names of the
// lists that had one.
func DropListKeysTx(ctx context.Context, tx *sql.Tx, email string, ch KeyChange) ([]string, error) {
	e, err := normalizeEmail(email)
	if err != nil {
		return nil, fmt.Errorf("drop list keys: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT l.name, k.fingerprint FROM list_key k JOIN list l ON l.id = k.list_id WHERE k.email = ? ORDER BY l.id`, e)
	if err != nil {
		return nil, fmt.Errorf("drop list keys of %s: %w", e, err)
	}
	type dropped struct{ list, fp string }
	var ds []dropped
	for rows.Next() {
		var d dropped
		if err := rows.Scan(&d.list, &d.fp); err != nil {
			rows.Close()
			return nil, fmt.Errorf("drop list keys of %s: %w", e, err)
		}
		ds = append(ds, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("drop list keys of %s: %w", e, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM list_key WHERE email = ?`, e); err != nil {
		return nil, fmt.Errorf("drop list keys of %s: %w", e, err)
	}
	var names []string
	for _, d := range ds {
		if err := addKeyEvent(ctx, tx, KeyEvent{Email: e, At: ch.At, Kind: "unpinned", OldFingerprint: d.fp, Actor: ch.Actor,
			Reason: "on list " + d.list + ": " + ch.Reason}); err != nil {
			return nil, err
		}
		names = append(names, d.list)
	}
	return names, nil
}

// PostBySpoolTx returns the post recorded on list listID for the spooled
// message spoolID, or ErrNotFound.
func PostBySpoolTx(ctx context.Context, tx *sql.Tx, listID, spoolID int64) (*Post, error) {
	p := Post{ListID: listID, SpoolID: spoolID}
	var received int64
	err := tx.QueryRowContext(ctx, `SELECT id, message_id, sender, status, encrypted, signature, signer, received_at
		FROM post WHERE list_id = ? AND spool_id = ? ORDER BY id DESC LIMIT 1`, listID, spoolID).
		Scan(&p.ID, &p.MessageID, &p.Sender, &p.Status, &p.Encrypted, &p.Signature, &p.Signer, &received)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("post of spool %d: %w", spoolID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("post of spool %d: %w", spoolID, err)
	}
	p.ReceivedAt = time.UnixMilli(received).UTC()
	return &p, nil
}
