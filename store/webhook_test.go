package store

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"
)

// TestWebhookQueue: an event is queued once per endpoint, even when
// queued again; a row interrupted while sending is due again after
// recovery; a delivered row is never claimed again.
func TestWebhookQueue(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	enqueue := func() int {
		var n int
		if err := db.Write(ctx, func(tx *sql.Tx) (err error) {
			n, err = EnqueueWebhookTx(ctx, tx, []string{"chat", "blog"}, "example.org:2026-001:released", "advisory.released", "2026-001", []byte(`{}`), t0)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := enqueue(); n != 2 {
		t.Fatalf("queued %d rows, want 2", n)
	}
	if n := enqueue(); n != 0 {
		t.Fatalf("the same event queued again: %d rows", n)
	}
	evs, err := db.ClaimWebhooks(ctx, t0, 10)
	if err != nil || len(evs) != 2 {
		t.Fatalf("claim = %v, %v", evs, err)
	}
	if again, _ := db.ClaimWebhooks(ctx, t0, 10); len(again) != 0 {
		t.Fatalf("rows in sending claimed twice: %v", again)
	}
	chat, blog := evs[0], evs[1]
	if chat.Endpoint != "chat" {
		chat, blog = blog, chat
	}
	if err := db.RecordWebhook(ctx, blog.ID, QueueSent, time.Time{}, "delivered", t0); err != nil {
		t.Fatal(err)
	}
	// A crash while posting to chat: recovered, due at once.
	if n, err := db.RecoverWebhooks(ctx, t0.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("recover = %d, %v", n, err)
	}
	evs, _ = db.ClaimWebhooks(ctx, t0.Add(time.Hour), 10)
	if len(evs) != 1 || evs[0].ID != chat.ID {
		t.Fatalf("after recovery claimed %v, want chat only", evs)
	}
	if err := db.RecordWebhook(ctx, chat.ID, QueueDeferred, t0.Add(2*time.Hour), "HTTP 500", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if next, ok, err := db.NextWebhookDue(ctx); err != nil || !ok || !next.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("next due = %v %v %v", next, ok, err)
	}
	if evs, _ := db.ClaimWebhooks(ctx, t0.Add(time.Hour+time.Minute), 10); len(evs) != 0 {
		t.Fatalf("a deferred row claimed before its time: %v", evs)
	}
	if err := db.RetryWebhook(ctx, blog.ID, t0); !errors.Is(err, ErrQueueState) {
		t.Errorf("retry of a delivered row: %v", err)
	}
	if err := db.RetryWebhook(ctx, chat.ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	rows, err := db.ListWebhooks(ctx, nil, 0)
	if err != nil || len(rows) != 2 || rows[0].Attempts+rows[1].Attempts != 2 {
		t.Fatalf("list = %+v, %v", rows, err)
	}
}
