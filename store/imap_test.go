package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// A database written before UIDs were per mailbox: its mailboxes are
// renumbered 1, 2, ... in the old order, flags follow their messages,
// every UIDVALIDITY changes, and new messages continue each mailbox's
// count.
func TestIMAPUIDMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cvd.db")
	old, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:6] {
		if _, err := old.ExecContext(ctx, m.sql); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
	created := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ms0 := created.UnixMilli()
	exec := func(q string, args ...any) int64 {
		t.Helper()
		res, err := old.ExecContext(ctx, q, args...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		id, _ := res.LastInsertId()
		return id
	}
	exec(`PRAGMA user_version = 6`)
	listA := exec(`INSERT INTO list (name, kind, created_at) VALUES ('2026-001', 'incident', ?)`, ms0)
	listB := exec(`INSERT INTO list (name, kind, created_at) VALUES ('2026-002', 'incident', ?)`, ms0)
	ann := exec(`INSERT INTO list (name, kind, created_at) VALUES ('announce', 'announce', ?)`, ms0)
	mA := exec(`INSERT INTO member (list_id, email, role, added_at, updated_at) VALUES (?, 'cora@example.org', 'coordinator', 0, 0)`, listA)
	mB := exec(`INSERT INTO member (list_id, email, role, added_at, updated_at) VALUES (?, 'cora@example.org', 'coordinator', 0, 0)`, listB)
	acct := exec(`INSERT INTO imap_account (email, password_hash, inbox_validity, created_at, updated_at) VALUES ('cora@example.org', 'x', 1000, 0, 0)`)
	n := 0
	enqueue := func(kind, rcpt string) int64 {
		n++
		id := exec(`INSERT INTO queue_msg (created_at, kind, size, raw) VALUES (?, ?, 1, ?)`, ms0, kind, fmt.Sprintf("msg %d", n))
		exec(`INSERT INTO queue (msg_id, rcpt, domain, token, next_attempt_at, created_at, updated_at) VALUES (?, ?, 'example.org', ?, 0, 0, 0)`,
			id, rcpt, fmt.Sprintf("t%d", n))
		return id
	}
	post := func(list int64, status string) int64 {
		n++
		return exec(`INSERT INTO post (list_id, message_id, sender, status, encrypted, signature, received_at, archive) VALUES (?, ?, 'x', ?, 1, 'good', ?, x'00')`,
			list, fmt.Sprintf("<%d@x>", n), status, ms0)
	}
	copyOf := func(p, member int64) int64 {
		return exec(`INSERT INTO post_copy (post_id, member_id, queue_msg) VALUES (?, ?, ?)`, p, member, enqueue("post", "cora@example.org"))
	}
	// Interleaved: A, B, someone else's notice, A; an announcement between
	// incident posts; notices to Cora between others'.
	enqueue("ack", "cora@example.org")
	copyOf(post(listA, "distributed"), mA)
	copyOf(post(listB, "distributed"), mB)
	enqueue("ack", "rita@example.net")
	post(ann, "distributed")
	c3 := copyOf(post(listA, "distributed"), mA)
	post(ann, "held")
	a2 := post(ann, "distributed")
	n2 := enqueue("imap-password", "Cora@example.org")
	for _, f := range []struct {
		box string
		uid int64
	}{{"Incidents/2026-001", c3}, {"Announce", a2}, {"INBOX", n2}} {
		exec(`INSERT INTO imap_flag (account_id, mailbox, uid, flags) VALUES (?, ?, ?, '\Seen')`, acct, f.box, f.uid)
	}
	var annValidity int64
	old.QueryRowContext(ctx, `SELECT value FROM imap_setting WHERE name = 'announce_validity'`).Scan(&annValidity)
	old.Close()

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check := func(box string, want string) *IMAPStatus {
		t.Helper()
		got, err := db.IMAPMessages(ctx, "cora@example.org", box, 0)
		if err != nil {
			t.Fatal(err)
		}
		s := ""
		for _, m := range got {
			s += fmt.Sprintf("%d%s ", m.UID, m.Flags)
		}
		if s != want {
			t.Errorf("%s after migration: %q, want %q", box, s, want)
		}
		st, err := db.IMAPMailboxStatus(ctx, "cora@example.org", box)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := check("Incidents/2026-001", `1 2\Seen `); st.UIDValidity != uint32(created.Unix()+1) || st.UIDNext != 3 {
		t.Errorf("A: %+v", st)
	}
	check("Incidents/2026-002", `1 `)
	if st := check("Announce", `1 2\Seen `); st.UIDValidity != uint32(annValidity+1) {
		t.Errorf("Announce validity %d, was %d", st.UIDValidity, annValidity)
	}
	if st := check("INBOX", `1 2\Seen `); st.UIDValidity != 1001 {
		t.Errorf("INBOX validity %d, was 1000", st.UIDValidity)
	}

	// New messages continue each mailbox's own count.
	err = db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO post (list_id, message_id, sender, status, encrypted, signature, received_at) VALUES (?, '<new@x>', 'x', 'distributed', 1, 'good', 0)`, listB)
		if err != nil {
			return err
		}
		p, _ := res.LastInsertId()
		q, err := EnqueueTx(ctx, tx, &OutMessage{Rcpts: []string{"cora@example.org"}, Raw: []byte("copy"), Kind: "post"})
		if err != nil {
			return err
		}
		if err := AddPostCopyTx(ctx, tx, p, mB, q); err != nil {
			return err
		}
		_, err = EnqueueTx(ctx, tx, &OutMessage{Rcpts: []string{"cora@example.org", "rita@example.net"}, Raw: []byte("notice"), Kind: "ack"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	check("Incidents/2026-002", `1 2 `)
	check("INBOX", `1 2\Seen 3 `)

	// Dropped notices take their flags along, and their UIDs are not
	// reused.
	drop := func(uid int) {
		t.Helper()
		var q int64
		err := db.Read(ctx, func(tx *sql.Tx) error {
			return tx.QueryRowContext(ctx, `SELECT id FROM queue WHERE imap_uid = ? AND lower(rcpt) = 'cora@example.org'`, uid).Scan(&q)
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.DropQueue(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	drop(3)
	if st := check("INBOX", `1 2\Seen `); st.UIDNext != 4 {
		t.Errorf("INBOX UIDNEXT after dropping the last: %d, want 4", st.UIDNext)
	}
	drop(2)
	var flags int
	db.Read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM imap_flag WHERE mailbox = 'INBOX'`).Scan(&flags)
	})
	if flags != 0 {
		t.Errorf("%d INBOX flags left after the flagged notice was dropped", flags)
	}
	err = db.Write(ctx, func(tx *sql.Tx) error {
		_, err := EnqueueTx(ctx, tx, &OutMessage{Rcpts: []string{"cora@example.org"}, Raw: []byte("notice"), Kind: "ack"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	check("INBOX", `1 4 `)
}
