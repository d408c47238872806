package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// IMAP mailbox names. Every account has INBOX (the notices cvd queued for
// its address: all queued mail to it that is not a list copy) and Announce
// (the announce archive, shared: the distributed posts of the announce
// list, each the signed public message as archived by the lists package);
// each incident list the address belongs to (in any state but removed) is
// IMAPIncidentPrefix + the list's name and holds exactly the member's
// sealed copies of the list's posts.
//
// UIDs count each mailbox's own messages (1, 2, 3, ...), so that no gap
// shows mail that went to another list or member: imap_uid of the queue
// row in INBOX, of the post in Announce, of the post_copy in incident
// mailboxes, each taken from the mailbox's counter in imap_uid_last when
// the row is written (see migration 0009). Counters never go back, so
// UIDs are stable, only grow and are never reused; UIDVALIDITY is the
// incident list's creation time (plus an offset raised when UIDs were
// renumbered), a per-account value for INBOX and a value set once for
// Announce.
const (
	IMAPInbox          = "INBOX"
	IMAPAnnounce       = "Announce"
	IMAPIncidentPrefix = "Incidents/"
)

// ErrForbidden is returned for a mailbox that exists but is not the
// account's (another incident, or one the member was removed from).
var ErrForbidden = errors.New("not this account's mailbox")

// IMAPAccount is an address's IMAP login.
type IMAPAccount struct {
	ID           int64
	Email        string
	PasswordHash string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// IMAPStatus describes one of an account's mailboxes.
type IMAPStatus struct {
	Name        string
	UIDValidity uint32
	UIDNext     uint32
	Messages    uint32
	Unseen      uint32
	Size        int64
}

// IMAPMessage is a message's metadata in one account's mailbox.
type IMAPMessage struct {
	UID   uint32
	Size  int64
	Date  time.Time
	Flags string // space-separated, this account's
}

// IMAPAccountByEmail returns the account of email, or ErrNotFound.
func (db *DB) IMAPAccountByEmail(ctx context.Context, email string) (*IMAPAccount, error) {
	var a IMAPAccount
	var created, updated int64
	err := db.Read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT id, email, password_hash, created_at, updated_at FROM imap_account WHERE email = ?`,
			strings.ToLower(email)).Scan(&a.ID, &a.Email, &a.PasswordHash, &created, &updated)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("imap account %s: %w", email, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("imap account %s: %w", email, err)
	}
	a.CreatedAt = time.UnixMilli(created).UTC()
	a.UpdatedAt = time.UnixMilli(updated).UTC()
	return &a, nil
}

// SetIMAPPasswordTx stores a new password hash for email inside tx,
// creating the account if needed. It reports whether it was created.
func SetIMAPPasswordTx(ctx context.Context, tx *sql.Tx, email, hash string, at time.Time) (bool, error) {
	email = strings.ToLower(email)
	ms := at.UnixMilli()
	res, err := tx.ExecContext(ctx, `UPDATE imap_account SET password_hash = ?, updated_at = ? WHERE email = ?`, hash, ms, email)
	if err != nil {
		return false, fmt.Errorf("set imap password of %s: %w", email, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return false, nil
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO imap_account (email, password_hash, inbox_validity, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
		email, hash, at.Unix(), ms, ms)
	if err != nil {
		return false, fmt.Errorf("create imap account %s: %w", email, err)
	}
	return true, nil
}

// MembersWithoutIMAPAccount returns the addresses of list members (not
// removed) that have no IMAP account yet.
func (db *DB) MembersWithoutIMAPAccount(ctx context.Context) ([]string, error) {
	var out []string
	err := db.Read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT DISTINCT m.email FROM member m
			WHERE m.state != 'removed' AND NOT EXISTS (SELECT 1 FROM imap_account a WHERE a.email = m.email)
			ORDER BY m.email`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e string
			if err := rows.Scan(&e); err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("members without imap account: %w", err)
	}
	return out, nil
}

// IsMember reports whether email is a member (not removed) of any list.
func (db *DB) IsMember(ctx context.Context, email string) (bool, error) {
	var n int
	err := db.Read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM member WHERE email = ? AND state != 'removed'`, strings.ToLower(email)).Scan(&n)
	})
	if err != nil {
		return false, fmt.Errorf("member %s: %w", email, err)
	}
	return n > 0, nil
}

// IMAPWatermark returns a value that changes whenever a message is added
// to any mailbox: IMAP sessions poll it cheaply.
func (db *DB) IMAPWatermark(ctx context.Context) (int64, error) {
	var q, a int64
	err := db.Read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM queue_msg`).Scan(&q); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM post`).Scan(&a)
	})
	if err != nil {
		return 0, fmt.Errorf("imap watermark: %w", err)
	}
	return q<<20 ^ a, nil
}

// imapBox is a resolved mailbox of an account.
type imapBox struct {
	account  int64
	email    string
	name     string
	kind     string // inbox, announce, incident
	member   int64  // incident: the member row
	validity uint32
	box      string // its key in imap_uid_last
}

// resolveIMAPBox finds an account's mailbox: ErrNotFound for no such
// mailbox (or account), ErrForbidden for another's incident.
func resolveIMAPBox(ctx context.Context, tx *sql.Tx, email, name string) (*imapBox, error) {
	b := &imapBox{email: strings.ToLower(email), name: name}
	var inboxValidity int64
	err := tx.QueryRowContext(ctx, `SELECT id, inbox_validity FROM imap_account WHERE email = ?`, b.email).Scan(&b.account, &inboxValidity)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("imap account %s: %w", email, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("imap account %s: %w", email, err)
	}
	switch {
	case name == IMAPInbox:
		b.kind = "inbox"
		b.validity = uint32(inboxValidity)
		b.box = "i:" + b.email
	case name == IMAPAnnounce:
		b.kind = "announce" // validity: see IMAPMailboxStatus
		b.box = "a"
	case strings.HasPrefix(name, IMAPIncidentPrefix):
		b.kind = "incident"
		list := strings.TrimPrefix(name, IMAPIncidentPrefix)
		var listID, created int64
		err := tx.QueryRowContext(ctx, `SELECT id, created_at FROM list WHERE name = ? AND kind = 'incident'`, list).Scan(&listID, &created)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("mailbox %s: %w", name, ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("mailbox %s: %w", name, err)
		}
		err = tx.QueryRowContext(ctx, `SELECT id FROM member WHERE list_id = ? AND email = ? AND state != 'removed'`, listID, b.email).Scan(&b.member)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("mailbox %s for %s: %w", name, email, ErrForbidden)
		}
		if err != nil {
			return nil, fmt.Errorf("mailbox %s: %w", name, err)
		}
		var offset int64
		err = tx.QueryRowContext(ctx, `SELECT COALESCE((SELECT value FROM imap_setting WHERE name = 'incident_validity_offset'), 0)`).Scan(&offset)
		if err != nil {
			return nil, fmt.Errorf("mailbox %s: %w", name, err)
		}
		b.validity = uint32(created/1000 + offset)
		b.box = fmt.Sprintf("m:%d", b.member)
	default:
		return nil, fmt.Errorf("mailbox %q: %w", name, ErrNotFound)
	}
	return b, nil
}

// inboxOnly keeps list copies (incident posts, announcements) out of
// INBOX: they have mailboxes of their own.
const inboxOnly = `qm.kind NOT IN ('post', 'announce') AND NOT EXISTS (SELECT 1 FROM post_copy pc WHERE pc.queue_msg = qm.id)`

// announceOnly keeps the announce archive to what was published.
const announceOnly = `p.status = 'distributed' AND p.archive IS NOT NULL`

// messagesSQL returns the query listing a mailbox's messages (uid, size,
// date, flags) with UID > ?, in UID order, and its arguments before that
// UID.
func (b *imapBox) messagesSQL() (string, []any) {
	switch b.kind {
	case "inbox":
		return `SELECT q.imap_uid AS uid, qm.size AS size, qm.created_at AS at, COALESCE(f.flags, '') AS flags FROM queue q
			JOIN queue_msg qm ON qm.id = q.msg_id
			LEFT JOIN imap_flag f ON f.account_id = ? AND f.mailbox = 'INBOX' AND f.uid = q.imap_uid
			WHERE q.rcpt = ? COLLATE NOCASE AND q.imap_uid IS NOT NULL AND ` + inboxOnly + ` AND q.imap_uid > ?
			ORDER BY q.imap_uid`, []any{b.account, b.email}
	case "announce":
		return `SELECT p.imap_uid AS uid, max(length(p.archive), p.archive_size) AS size, p.received_at AS at, COALESCE(f.flags, '') AS flags FROM post p
			LEFT JOIN imap_flag f ON f.account_id = ? AND f.mailbox = 'Announce' AND f.uid = p.imap_uid
			WHERE p.list_id IN (SELECT id FROM list WHERE kind = 'announce') AND ` + announceOnly + ` AND p.imap_uid > ? ORDER BY p.imap_uid`, []any{b.account}
	default:
		return `SELECT c.imap_uid AS uid, qm.size AS size, qm.created_at AS at, COALESCE(f.flags, '') AS flags FROM post_copy c
			JOIN queue_msg qm ON qm.id = c.queue_msg
			LEFT JOIN imap_flag f ON f.account_id = ? AND f.mailbox = ? AND f.uid = c.imap_uid
			WHERE c.member_id = ? AND c.imap_uid > ? ORDER BY c.imap_uid`, []any{b.account, b.name, b.member}
	}
}

// IMAPMailboxes returns the names of the mailboxes of email's account:
// INBOX, Announce and its incidents.
func (db *DB) IMAPMailboxes(ctx context.Context, email string) ([]string, error) {
	out := []string{IMAPInbox, IMAPAnnounce}
	err := db.Read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT l.name FROM member m JOIN list l ON l.id = m.list_id
			WHERE m.email = ? AND m.state != 'removed' AND l.kind = 'incident' ORDER BY l.name`, strings.ToLower(email))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				return err
			}
			out = append(out, IMAPIncidentPrefix+n)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("mailboxes of %s: %w", email, err)
	}
	return out, nil
}

// IMAPAccess checks that email's account may read mailbox name.
func (db *DB) IMAPAccess(ctx context.Context, email, name string) error {
	return db.Read(ctx, func(tx *sql.Tx) error {
		_, err := resolveIMAPBox(ctx, tx, email, name)
		return err
	})
}

// IMAPMailboxStatus returns the status of one of email's mailboxes.
func (db *DB) IMAPMailboxStatus(ctx context.Context, email, name string) (*IMAPStatus, error) {
	var st *IMAPStatus
	err := db.Read(ctx, func(tx *sql.Tx) error {
		b, err := resolveIMAPBox(ctx, tx, email, name)
		if err != nil {
			return err
		}
		if b.kind == "announce" {
			var v int64
			if err := tx.QueryRowContext(ctx, `SELECT value FROM imap_setting WHERE name = 'announce_validity'`).Scan(&v); err != nil {
				return fmt.Errorf("announce uidvalidity: %w", err)
			}
			b.validity = uint32(v)
		}
		q, args := b.messagesSQL()
		q = `SELECT COUNT(*), COALESCE(MAX(uid), 0), COALESCE(SUM(size), 0),
			COALESCE(SUM(instr(' ' || flags || ' ', ' \Seen ') > 0), 0) FROM (` + q + `)`
		var n, maxUID, size, seen int64
		if err := tx.QueryRowContext(ctx, q, append(args, 0)...).Scan(&n, &maxUID, &size, &seen); err != nil {
			return fmt.Errorf("status of %s: %w", name, err)
		}
		// UIDNEXT comes from the counter: a dropped last notice does not
		// make its UID look free.
		var last int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE((SELECT last FROM imap_uid_last WHERE box = ?), 0)`, b.box).Scan(&last); err != nil {
			return fmt.Errorf("status of %s: %w", name, err)
		}
		st = &IMAPStatus{Name: name, UIDValidity: b.validity, UIDNext: uint32(max(maxUID, last)) + 1,
			Messages: uint32(n), Unseen: uint32(n - seen), Size: size}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// IMAPMessages returns the messages with UID > after in one of email's
// mailboxes, in UID order, with the account's flags.
func (db *DB) IMAPMessages(ctx context.Context, email, name string, after uint32) ([]IMAPMessage, error) {
	var out []IMAPMessage
	err := db.Read(ctx, func(tx *sql.Tx) error {
		b, err := resolveIMAPBox(ctx, tx, email, name)
		if err != nil {
			return err
		}
		q, args := b.messagesSQL()
		rows, err := tx.QueryContext(ctx, q, append(args, after)...)
		if err != nil {
			return fmt.Errorf("messages of %s: %w", name, err)
		}
		defer rows.Close()
		for rows.Next() {
			var m IMAPMessage
			var at int64
			if err := rows.Scan(&m.UID, &m.Size, &at, &m.Flags); err != nil {
				return err
			}
			m.Date = time.UnixMilli(at).UTC()
			out = append(out, m)
		}
		return rows.Err()
	})
	return out, err
}

// IMAPFlags returns the account's flags on the messages of a mailbox, by
// UID (messages without flags are left out).
func (db *DB) IMAPFlags(ctx context.Context, email, name string) (map[uint32]string, error) {
	out := map[uint32]string{}
	err := db.Read(ctx, func(tx *sql.Tx) error {
		b, err := resolveIMAPBox(ctx, tx, email, name)
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT uid, flags FROM imap_flag WHERE account_id = ? AND mailbox = ?`, b.account, b.name)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var uid uint32
			var f string
			if err := rows.Scan(&uid, &f); err != nil {
				return err
			}
			out[uid] = f
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("flags of %s: %w", name, err)
	}
	return out, nil
}

// maxBodyBatch bounds the UIDs read in one query.
const maxBodyBatch = 200

// IMAPBodies calls fn with the raw message of each of uids (ascending) that
// is in one of email's mailboxes; UIDs not there are skipped.
func (db *DB) IMAPBodies(ctx context.Context, email, name string, uids []uint32, fn func(uid uint32, raw []byte) error) error {
	for len(uids) > 0 {
		batch := uids
		if len(batch) > maxBodyBatch {
			batch = batch[:maxBodyBatch]
		}
		uids = uids[len(batch):]
		err := db.Read(ctx, func(tx *sql.Tx) error {
			b, err := resolveIMAPBox(ctx, tx, email, name)
			if err != nil {
				return err
			}
			in := "?" + strings.Repeat(", ?", len(batch)-1)
			var q string
			var args []any
			switch b.kind {
			case "inbox":
				q = `SELECT q.imap_uid, qm.raw, qm.id, qm.size, qm.body_id FROM queue q JOIN queue_msg qm ON qm.id = q.msg_id WHERE q.imap_uid IN (` + in + `)
					AND ` + inboxOnly + ` AND q.rcpt = ? COLLATE NOCASE ORDER BY q.imap_uid`
			case "announce":
				q = `SELECT p.imap_uid, p.archive, p.id, p.archive_size, NULL FROM post p WHERE p.imap_uid IN (` + in + `) AND ` + announceOnly + `
					AND p.list_id IN (SELECT id FROM list WHERE kind = 'announce') ORDER BY p.imap_uid`
			default:
				q = `SELECT c.imap_uid, qm.raw, qm.id, qm.size, qm.body_id FROM post_copy c JOIN queue_msg qm ON qm.id = c.queue_msg
					WHERE c.imap_uid IN (` + in + `) AND c.member_id = ? ORDER BY c.imap_uid`
			}
			for _, u := range batch {
				args = append(args, u)
			}
			switch b.kind {
			case "inbox":
				args = append(args, b.email)
			case "incident":
				args = append(args, b.member)
			}
			rows, err := tx.QueryContext(ctx, q, args...)
			if err != nil {
				return fmt.Errorf("bodies in %s: %w", name, err)
			}
			defer rows.Close()
			wr := &wholeReader{tx: tx}
			defer wr.close()
			for rows.Next() {
				var uid uint32
				var raw []byte
				var msgID, size int64
				var body sql.NullInt64
				if err := rows.Scan(&uid, &raw, &msgID, &size, &body); err != nil {
					return err
				}
				pieces := queuePieces
				if b.kind == "announce" {
					pieces = postPieces
				}
				if raw, err = wr.read(ctx, pieces, msgID, raw, size, body); err != nil {
					return err
				}
				if err := fn(uid, raw); err != nil {
					return err
				}
			}
			return rows.Err()
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// SetIMAPFlags stores the account's flags (space-separated; "" clears
// them) on messages of one of its mailboxes, by UID. UIDs not in the
// mailbox are refused.
func (db *DB) SetIMAPFlags(ctx context.Context, email, name string, flags map[uint32]string) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		b, err := resolveIMAPBox(ctx, tx, email, name)
		if err != nil {
			return err
		}
		var check string
		switch b.kind {
		case "inbox":
			check = `SELECT 1 FROM queue q JOIN queue_msg qm ON qm.id = q.msg_id WHERE q.imap_uid = ? AND ` + inboxOnly + `
				AND q.rcpt = ? COLLATE NOCASE LIMIT 1`
		case "announce":
			check = `SELECT 1 FROM post p WHERE p.imap_uid = ? AND ? IS NOT NULL AND ` + announceOnly + `
				AND p.list_id IN (SELECT id FROM list WHERE kind = 'announce')`
		default:
			check = `SELECT 1 FROM post_copy WHERE imap_uid = ? AND member_id = ?`
		}
		var owner any = b.email
		if b.kind == "incident" {
			owner = b.member
		}
		for uid, f := range flags {
			var one int
			if err := tx.QueryRowContext(ctx, check, uid, owner).Scan(&one); err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					return fmt.Errorf("flags on %s uid %d: %w", name, uid, ErrNotFound)
				}
				return fmt.Errorf("flags on %s uid %d: %w", name, uid, err)
			}
			if f == "" {
				_, err = tx.ExecContext(ctx, `DELETE FROM imap_flag WHERE account_id = ? AND mailbox = ? AND uid = ?`, b.account, b.name, uid)
			} else {
				_, err = tx.ExecContext(ctx, `INSERT INTO imap_flag (account_id, mailbox, uid, flags) VALUES (?, ?, ?, ?)
					ON CONFLICT (account_id, mailbox, uid) DO UPDATE SET flags = excluded.flags`, b.account, b.name, uid, f)
			}
			if err != nil {
				return fmt.Errorf("flags on %s uid %d: %w", name, uid, err)
			}
		}
		return nil
	})
}
