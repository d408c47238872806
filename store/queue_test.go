package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)

func testMsg(rcpts ...string) *OutMessage {
	return &OutMessage{
		Rcpts:     rcpts,
		Raw:       []byte("From: security@example.org\r\nSubject: hi\r\n\r\nbody\r\n"),
		Kind:      "prenotify",
		Ref:       "2026-001",
		CreatedAt: t0,
	}
}

func TestEnqueueClaimRecord(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	id, err := db.Enqueue(ctx, testMsg("a@Example.NET", "b@example.net", "c@other.example", "a@example.net"))
	if err != nil {
		t.Fatal(err)
	}
	// Not due before its creation time.
	if bs, err := db.ClaimQueue(ctx, t0.Add(-time.Second), 10, nil); err != nil || len(bs) != 0 {
		t.Fatalf("claim before due = %v, %v", bs, err)
	}
	bs, err := db.ClaimQueue(ctx, t0, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 {
		t.Fatalf("claimed %d batches, want 2 (one per domain): %+v", len(bs), bs)
	}
	b := bs[0]
	if b.MessageID != id || b.Domain != "example.net" || len(b.Rcpts) != 2 || b.Rcpts[0].Addr != "a@example.net" || b.Rcpts[1].Addr != "b@example.net" {
		t.Errorf("first batch = %+v", b)
	}
	if b.Kind != "prenotify" || b.Ref != "2026-001" || !b.CreatedAt.Equal(t0) {
		t.Errorf("batch metadata = %q %q %v", b.Kind, b.Ref, b.CreatedAt)
	}
	if !bytes.HasPrefix(b.Raw, []byte("Auto-Submitted: auto-generated\r\nFrom:")) {
		t.Errorf("raw = %q", b.Raw)
	}
	if len(b.Rcpts[0].Token) != 16 || b.Rcpts[0].Token == b.Rcpts[1].Token {
		t.Errorf("tokens %q %q", b.Rcpts[0].Token, b.Rcpts[1].Token)
	}
	// Claimed rows are not claimed again.
	if again, _ := db.ClaimQueue(ctx, t0, 10, nil); len(again) != 0 {
		t.Errorf("claimed twice: %+v", again)
	}
	next := t0.Add(time.Minute)
	err = db.RecordQueue(ctx, t0, []QueueOutcome{
		{ID: b.Rcpts[0].ID, State: QueueSent, Reply: "250 2.0.0 ok"},
		{ID: b.Rcpts[1].ID, State: QueueDeferred, NextAttempt: next, Reply: "451 4.3.0 later"},
		{ID: bs[1].Rcpts[0].ID, State: QueueFailed, Reply: "550 5.1.1 no such user"},
	})
	if err != nil {
		t.Fatal(err)
	}
	all, err := db.ListQueue(ctx, QueueFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]QueueEntry{}
	for _, e := range all {
		got[e.Rcpt] = e
	}
	if e := got["a@example.net"]; e.State != QueueSent || e.Attempts != 1 || e.LastReply != "250 2.0.0 ok" {
		t.Errorf("sent row = %+v", e)
	}
	if e := got["b@example.net"]; e.State != QueueDeferred || e.Attempts != 1 || !e.NextAttempt.Equal(next) {
		t.Errorf("deferred row = %+v", e)
	}
	if e := got["c@other.example"]; e.State != QueueFailed || e.Kind != "prenotify" || e.Ref != "2026-001" {
		t.Errorf("failed row = %+v", e)
	}
	if due, ok, err := db.NextQueueDue(ctx); err != nil || !ok || !due.Equal(next) {
		t.Errorf("next due = %v %v %v, want %v", due, ok, err, next)
	}
	if bs, _ := db.ClaimQueue(ctx, next, 10, nil); len(bs) != 1 || bs[0].Rcpts[0].Addr != "b@example.net" || bs[0].Rcpts[0].Attempts != 1 {
		t.Errorf("deferred row not claimed when due: %+v", bs)
	}
}

func TestEnqueueTxRollsBackWithDomainChange(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	boom := errors.New("domain change failed")
	err := db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := EnqueueTx(ctx, tx, testMsg("a@example.net")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if all, _ := db.ListQueue(ctx, QueueFilter{}); len(all) != 0 {
		t.Errorf("notice of a rolled-back change is queued: %+v", all)
	}
	if _, err := db.Enqueue(ctx, testMsg("bad address")); err == nil {
		t.Error("bad recipient accepted")
	}
	if _, err := db.Enqueue(ctx, testMsg()); err == nil {
		t.Error("message without recipients accepted")
	}
}

func TestAutoSubmitted(t *testing.T) {
	raw := []byte("Subject: x\r\n\r\nAuto-Submitted: in the body\r\n")
	for _, c := range []struct {
		origin Origin
		raw    []byte
		want   string
	}{
		{OriginNotice, raw, "Auto-Submitted: auto-generated\r\nSubject: x\r\n"},
		{OriginReply, raw, "Auto-Submitted: auto-replied\r\nSubject: x\r\n"},
		{OriginRelay, raw, "Subject: x\r\n"},
		{OriginNotice, []byte("AUTO-SUBMITTED: auto-replied\r\nSubject: x\r\n\r\n"), "AUTO-SUBMITTED: auto-replied\r\nSubject: x\r\n"},
	} {
		db := openTemp(t)
		m := testMsg("a@example.net")
		m.Origin, m.Raw = c.origin, c.raw
		if _, err := db.Enqueue(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		bs, err := db.ClaimQueue(context.Background(), t0, 1, nil)
		if err != nil || len(bs) != 1 {
			t.Fatal(bs, err)
		}
		if !bytes.HasPrefix(bs[0].Raw, []byte(c.want)) {
			t.Errorf("origin %d: raw = %q, want prefix %q", c.origin, bs[0].Raw, c.want)
		}
	}
}

func TestClaimLimitSkipAndRecover(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	for i := range 5 {
		if _, err := db.Enqueue(ctx, testMsg(fmt.Sprintf("u%d@slow.example", i), fmt.Sprintf("u%d@fast.example", i))); err != nil {
			t.Fatal(err)
		}
	}
	bs, err := db.ClaimQueue(ctx, t0, 3, []string{"slow.example"})
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 3 {
		t.Fatalf("claimed %d, want 3", len(bs))
	}
	for _, b := range bs {
		if b.Domain != "fast.example" {
			t.Errorf("skipped domain claimed: %+v", b)
		}
	}
	// A crash leaves them in sending; recovery makes them due again.
	n, err := db.RecoverQueue(ctx, t0.Add(time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("recovered %d, %v", n, err)
	}
	bs, err = db.ClaimQueue(ctx, t0, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, b := range bs {
		total += len(b.Rcpts)
	}
	if total != 10 {
		t.Errorf("claimed %d rows after recovery, want 10", total)
	}
}

func TestRetryDropAndBounce(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	if _, err := db.Enqueue(ctx, testMsg("a@example.net", "b@example.net")); err != nil {
		t.Fatal(err)
	}
	bs, _ := db.ClaimQueue(ctx, t0, 10, nil)
	a, b := bs[0].Rcpts[0], bs[0].Rcpts[1]
	if err := db.RetryQueue(ctx, a.ID, t0); !errors.Is(err, ErrQueueState) {
		t.Errorf("retry while sending: %v", err)
	}
	db.RecordQueue(ctx, t0, []QueueOutcome{
		{ID: a.ID, State: QueueFailed, Reply: "550 no"},
		{ID: b.ID, State: QueueSent, Reply: "250 ok"},
	})
	if err := db.RetryQueue(ctx, a.ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if e, _ := db.QueueEntry(ctx, a.ID); e.State != QueueQueued || !e.NextAttempt.Equal(t0.Add(time.Hour)) || e.Attempts != 1 {
		t.Errorf("after retry: %+v", e)
	}
	if err := db.RetryQueue(ctx, 999, t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("retry of missing row: %v", err)
	}

	// A bounce under a's token naming b (same transaction) lands on b.
	e, failed, err := db.RecordBounce(ctx, strings.ToUpper(a.Token), "B@example.net", "5.1.1", "smtp; 550 5.1.1 unknown", true, t0)
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != b.ID || !failed || e.State != QueueFailed || !strings.Contains(e.LastReply, "5.1.1") {
		t.Errorf("bounce = %+v failed=%v", e, failed)
	}
	if _, failed, _ := db.RecordBounce(ctx, a.Token, "", "5.1.1", "", true, t0); !failed {
		t.Error("bounce for a queued row did not fail it")
	}
	if _, failed, _ := db.RecordBounce(ctx, a.Token, "", "5.1.1", "", true, t0); failed {
		t.Error("second bounce reported a new failure")
	}
	if e, failed, _ := db.RecordBounce(ctx, b.Token, "", "4.4.7", "delayed", false, t0); failed || e.State != QueueFailed || !strings.Contains(e.LastReply, "4.4.7") {
		t.Errorf("delay report changed state: %+v", e)
	}
	if _, _, err := db.RecordBounce(ctx, "nosuchtoken", "", "5.0.0", "", true, t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown token: %v", err)
	}

	if st, err := db.DropQueue(ctx, a.ID); err != nil || st != QueueFailed {
		t.Fatalf("drop = %q, %v", st, err)
	}
	if _, err := db.DropQueue(ctx, a.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second drop: %v", err)
	}
	db.DropQueue(ctx, b.ID)
	var n int
	db.Read(ctx, func(tx *sql.Tx) error { return tx.QueryRow(`SELECT count(*) FROM queue_msg`).Scan(&n) })
	if n != 0 {
		t.Errorf("%d message bodies left after dropping every row", n)
	}
}

func TestRecordOnlyTouchesSendingRows(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	db.Enqueue(ctx, testMsg("a@example.net"))
	bs, _ := db.ClaimQueue(ctx, t0, 10, nil)
	id := bs[0].Rcpts[0].ID
	// Dropped while sending: the late outcome is ignored, not an error.
	db.DropQueue(ctx, id)
	if err := db.RecordQueue(ctx, t0, []QueueOutcome{{ID: id, State: QueueSent}}); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordQueue(ctx, t0, []QueueOutcome{{ID: id, State: "bogus"}}); err == nil {
		t.Error("bogus state accepted")
	}
	// Released rows go back untried.
	db.Enqueue(ctx, testMsg("b@example.net"))
	bs, _ = db.ClaimQueue(ctx, t0, 10, nil)
	db.RecordQueue(ctx, t0, []QueueOutcome{{ID: bs[0].Rcpts[0].ID, State: QueueQueued}})
	if e, _ := db.QueueEntry(ctx, bs[0].Rcpts[0].ID); e.State != QueueQueued || e.Attempts != 0 {
		t.Errorf("released row = %+v", e)
	}
}

func TestUrgentMessagesAreClaimedFirst(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	for i := range 5 {
		if _, err := db.Enqueue(ctx, testMsg(fmt.Sprintf("notice%d@example.net", i))); err != nil {
			t.Fatal(err)
		}
	}
	m := testMsg("subscriber@example.net")
	m.Urgent = true
	if _, err := db.Enqueue(ctx, m); err != nil {
		t.Fatal(err)
	}
	bs, err := db.ClaimQueue(ctx, t0.Add(time.Minute), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || bs[0].Rcpts[0].Addr != "subscriber@example.net" {
		t.Errorf("claimed %+v first; the urgent message was queued last but must go first", bs)
	}
}

// TestClaimQueueBytes claims no more message bytes than asked, counting a
// message once for all its recipients, and the first message whatever its
// size: a large post to many members is not read into memory at once.
func TestClaimQueueBytes(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	big := func(rcpts ...string) *OutMessage {
		m := testMsg(rcpts...)
		m.Raw = append([]byte("From: security@example.org\r\nSubject: big\r\n\r\n"), bytes.Repeat([]byte("x"), 10000)...)
		return m
	}
	for i := range 3 {
		if _, err := db.Enqueue(ctx, big(fmt.Sprintf("a%d@example.net", i), fmt.Sprintf("b%d@example.net", i))); err != nil {
			t.Fatal(err)
		}
	}
	claimed := func(bs []QueueBatch) (rows int, bytes int) {
		for _, b := range bs {
			rows += len(b.Rcpts)
			bytes += len(b.Raw)
		}
		return
	}
	// Smaller than one message: the first message, both its recipients.
	bs, err := db.ClaimQueueBytes(ctx, t0, 100, 100, nil)
	if rows, n := claimed(bs); err != nil || len(bs) != 1 || rows != 2 || n < 10000 {
		t.Fatalf("claim within 100 bytes = %d batches, %d rows, %d bytes, %v; want the first message to both", len(bs), rows, n, err)
	}
	// Room for one more message but not two.
	bs, err = db.ClaimQueueBytes(ctx, t0, 100, 15000, nil)
	if rows, _ := claimed(bs); err != nil || len(bs) != 1 || rows != 2 {
		t.Fatalf("claim within 15000 bytes = %d batches, %d rows, %v; want one message", len(bs), rows, err)
	}
	bs, err = db.ClaimQueueBytes(ctx, t0, 100, 0, nil)
	if rows, _ := claimed(bs); err != nil || rows != 2 {
		t.Fatalf("unbounded claim of the rest = %d rows, %v; want 2", rows, err)
	}
}
