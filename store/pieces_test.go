package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestSpoolLargeInPieces stores a message of several pieces, given in
// pieces that do not match the stored ones, reads it back byte for byte
// and has retention empty it, pieces and all.
func TestSpoolLargeInPieces(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	raw := make([]byte, 3*SpoolPiece+12345)
	rand.Read(raw)
	copy(raw, "From: a@example.net\r\nSubject: big\r\n\r\n")
	given := [][]byte{raw[:100], raw[100 : 2*SpoolPiece+7], raw[2*SpoolPiece+7:]}
	received := time.UnixMilli(1763766000123).UTC()
	env := Envelope{ReceivedAt: received, RemoteAddr: "127.0.0.1:1234", Helo: "client",
		MailFrom: "a@example.net", Rcpts: []string{"security@example.org"}}
	id, err := db.SpoolPieces(ctx, env, given)
	if err != nil {
		t.Fatal(err)
	}
	small, err := db.Spool(ctx, env, []byte("From: a@example.net\r\n\r\nsmall\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	count := func(q string, args ...any) (n int64) {
		t.Helper()
		if err := db.Read(ctx, func(tx *sql.Tx) error { return tx.QueryRowContext(ctx, q, args...).Scan(&n) }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(`SELECT COUNT(*) FROM spool_chunk WHERE spool_id = ?`, id); n < 4 {
		t.Errorf("%d pieces stored, want at least 4", n)
	}
	if n := count(`SELECT MAX(length(data)) FROM spool_chunk`); n > SpoolPiece {
		t.Errorf("a piece of %d bytes stored", n)
	}
	if n := count(`SELECT COUNT(*) FROM spool_chunk WHERE spool_id = ?`, small); n != 0 {
		t.Errorf("small message stored in %d pieces", n)
	}
	m, err := db.SpooledMessage(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Raw, raw) {
		t.Fatalf("read back %d bytes, not the %d stored", len(m.Raw), len(raw))
	}
	if sum, err := db.ListSpool(ctx, 10); err != nil || len(sum) != 2 || sum[1].Size != int64(len(raw)) {
		t.Errorf("spool list = %+v, %v", sum, err)
	}

	for _, sid := range []int64{id, small} {
		if err := db.Write(ctx, func(tx *sql.Tx) error { return MarkRcptTx(ctx, tx, sid, "security@example.org", SpoolDone, "") }); err != nil {
			t.Fatal(err)
		}
	}
	p, err := db.Purge(ctx, received.Add(time.Hour), time.Time{}, received.Add(2*time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(raw)) + count(`SELECT size FROM spool WHERE id = ?`, small); p.SpoolMessages != 2 || p.SpoolBytes != want {
		t.Errorf("purged %+v, want 2 messages of %d bytes", p, want)
	}
	if n := count(`SELECT COUNT(*) FROM spool_chunk`); n != 0 {
		t.Errorf("%d pieces left after the purge", n)
	}
	if m, err := db.SpooledMessage(ctx, id); err != nil || len(m.Raw) != 0 {
		t.Errorf("purged message read back with %d bytes, %v", len(m.Raw), err)
	}
}

// TestQueueLargeInPieces queues a message larger than a piece and has it
// back whole where it is read (claim, QueuedRaw, by kind and ref), then
// drops it: its pieces go with it.
func TestQueueLargeInPieces(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	m := testMsg("a@example.net")
	m.Origin = OriginRelay
	m.Raw = make([]byte, 2*SpoolPiece+999)
	rand.Read(m.Raw)
	copy(m.Raw, "From: security@example.org\r\nSubject: big\r\n\r\n")
	id, err := db.Enqueue(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	var pieces, inline int64
	if err := db.Read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM queue_chunk WHERE msg_id = ?1), (SELECT length(raw) FROM queue_msg WHERE id = ?1)`, id).Scan(&pieces, &inline)
	}); err != nil {
		t.Fatal(err)
	}
	if pieces != 3 || inline != 0 {
		t.Errorf("stored in %d pieces and %d bytes inline, want 3 and 0", pieces, inline)
	}
	raw, err := db.QueuedRaw(ctx, id)
	if err != nil || !bytes.Equal(raw, m.Raw) {
		t.Errorf("QueuedRaw: %d bytes, %v; want the %d queued", len(raw), err, len(m.Raw))
	}
	var byRef []QueuedMessage
	if err := db.Read(ctx, func(tx *sql.Tx) (err error) { byRef, err = QueuedMessagesTx(ctx, tx, m.Kind, m.Ref); return err }); err != nil {
		t.Fatal(err)
	}
	if len(byRef) != 1 || !bytes.Equal(byRef[0].Raw, m.Raw) {
		t.Errorf("queued by kind and ref: %d messages (%d bytes)", len(byRef), len(byRef[0].Raw))
	}
	// Claimed, it is not read whole but through Open, as often as asked.
	bs, err := db.ClaimQueueBytes(ctx, t0, 10, 0, nil)
	if err != nil || len(bs) != 1 || bs[0].Raw != nil || bs[0].Open == nil || bs[0].Size != int64(len(m.Raw)) {
		t.Fatalf("claimed %d batches, %v; want the message to read through Open", len(bs), err)
	}
	for range 2 {
		if raw, err := readBatch(ctx, bs[0]); err != nil || !bytes.Equal(raw, m.Raw) {
			t.Fatalf("read through Open: %d bytes, %v; want the %d queued", len(raw), err, len(m.Raw))
		}
	}
	// A piece gone (or one too many) is an error, never a shorter message.
	for _, change := range []string{
		`INSERT INTO queue_chunk (msg_id, seq, data) VALUES (?1, 99, x'2e')`,
		`DELETE FROM queue_chunk WHERE msg_id = ?1 AND seq = 99`,
		`DELETE FROM queue_chunk WHERE msg_id = ?1 AND seq = 1`,
	} {
		if err := db.Write(ctx, func(tx *sql.Tx) error { _, err := tx.ExecContext(ctx, change, id); return err }); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(change, "DELETE FROM queue_chunk WHERE msg_id = ?1 AND seq = 99") {
			continue
		}
		if raw, err := readBatch(ctx, bs[0]); !errors.Is(err, errPieces) {
			t.Fatalf("after %q: %d bytes, %v", change, len(raw), err)
		}
	}
	if _, err := db.DropQueue(ctx, bs[0].Rcpts[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := db.Read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM queue_chunk`).Scan(&pieces)
	}); err != nil || pieces != 0 {
		t.Errorf("%d pieces left after the drop, %v", pieces, err)
	}
}

// TestPostArchiveInPieces records a post whose archive copy is larger
// than a piece and reads it back whole, by post and by list.
func TestPostArchiveInPieces(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	archive := make([]byte, SpoolPiece+5)
	rand.Read(archive)
	l := &List{Name: "2026-001", Kind: ListIncident, CreatedAt: t0}
	p := &Post{MessageID: "<big@example.net>", Sender: "a@example.net", Status: "distributed", ReceivedAt: t0, Archive: archive}
	small := &Post{MessageID: "<small@example.net>", Sender: "a@example.net", Status: "distributed", ReceivedAt: t0, Archive: []byte("small")}
	err := db.Write(ctx, func(tx *sql.Tx) error {
		if err := CreateListTx(ctx, tx, l); err != nil {
			return err
		}
		p.ListID, small.ListID = l.ID, l.ID
		if err := AddPostTx(ctx, tx, p); err != nil {
			return err
		}
		return AddPostTx(ctx, tx, small)
	})
	if err != nil {
		t.Fatal(err)
	}
	var got *Post
	var all []Post
	var pieces int
	err = db.Read(ctx, func(tx *sql.Tx) (err error) {
		if got, err = PostTx(ctx, tx, p.ID); err != nil {
			return err
		}
		if all, err = PostsTx(ctx, tx, l.ID); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM post_chunk WHERE post_id = ?`, p.ID).Scan(&pieces)
	})
	if err != nil {
		t.Fatal(err)
	}
	if pieces != 2 {
		t.Errorf("archive in %d pieces, want 2", pieces)
	}
	if !bytes.Equal(got.Archive, archive) {
		t.Errorf("post read back with %d bytes of archive, want %d", len(got.Archive), len(archive))
	}
	if len(all) != 2 || !bytes.Equal(all[0].Archive, archive) || string(all[1].Archive) != "small" {
		t.Errorf("posts of the list: %d", len(all))
	}
}

// TestSpoolPieceBoundary stores a message of exactly one piece in its row
// and one byte more in two pieces, each read back byte for byte.
func TestSpoolPieceBoundary(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	for _, c := range []struct{ size, pieces int }{{SpoolPiece, 0}, {SpoolPiece + 1, 2}} {
		raw := make([]byte, c.size)
		rand.Read(raw)
		id, err := db.SpoolPieces(ctx, Envelope{ReceivedAt: t0, MailFrom: "a@example.net", Rcpts: []string{"security@example.org"}},
			[][]byte{raw[:7], raw[7:]})
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.Read(ctx, func(tx *sql.Tx) error {
			return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM spool_chunk WHERE spool_id = ?`, id).Scan(&n)
		}); err != nil {
			t.Fatal(err)
		}
		if n != c.pieces {
			t.Errorf("%d bytes stored in %d pieces, want %d", c.size, n, c.pieces)
		}
		m, err := db.SpooledMessage(ctx, id)
		if err != nil || !bytes.Equal(m.Raw, raw) {
			t.Errorf("%d bytes: read back %d, %v", c.size, len(m.Raw), err)
		}
	}
}
