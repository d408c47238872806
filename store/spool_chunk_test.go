package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
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
