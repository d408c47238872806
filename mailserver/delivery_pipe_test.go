package mailserver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/store"
)

// Over a pipelining server (go-smtp offers PIPELINING) the message
// arrives byte for byte, lines starting with a dot included, a refused
// recipient fails alone, and transactions share one connection.
func TestDeliveryPipelinedTransactions(t *testing.T) {
	sink := newTestSink(t, nil, false)
	db := openQueueDB(t, t.TempDir())
	clock := &fakeClock{t: start}
	w := mustWorker(t, db, DeliveryOptions{
		Mode: ModeSmarthost, Smarthost: sink.Addr, SmarthostTLS: "none",
		Now: clock.Now, PollInterval: time.Hour, PerDestination: 1,
	})
	raw := "From: security@example.org\r\nTo: someone@example.net\r\nSubject: dots\r\n\r\n.\r\n..two\r\n.three\r\nmiddle\r\n. \r\nlast line without its end"
	_, err := db.Enqueue(context.Background(), &store.OutMessage{
		Rcpts: []string{"ok1@a.example", "hard1@a.example", "ok2@a.example"}, Raw: []byte(raw), Origin: store.OriginRelay, CreatedAt: start,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		enqueue(t, db, start, fmt.Sprint("n", i), fmt.Sprintf("x%d@a.example", i))
	}
	runWorker(t, w)
	waitIdle(t, w, db)

	es := entries(t, db)
	for _, r := range []string{"ok1@a.example", "ok2@a.example", "x0@a.example", "x1@a.example", "x2@a.example"} {
		if e := es[r]; e.State != store.QueueSent || !strings.Contains(e.LastReply, ": 250 ") {
			t.Errorf("%s: %s %q", r, e.State, e.LastReply)
		}
	}
	if e := es["hard1@a.example"]; e.State != store.QueueFailed || !strings.Contains(e.LastReply, "550 5.1.1") {
		t.Errorf("hard1: %s %q", e.State, e.LastReply)
	}
	txns := sink.Txns()
	if len(txns) != 4 {
		t.Fatalf("sink got %d transactions, want 4", len(txns))
	}
	if got := strings.Join(txns[0].To, ","); got != "ok1@a.example,ok2@a.example" {
		t.Errorf("first transaction to %s", got)
	}
	if want := raw + "\r\n"; string(txns[0].Data) != want {
		t.Errorf("sink got\n%q\nwant\n%q", txns[0].Data, want)
	}
	sink.mu.Lock()
	sessions := sink.sessions
	sink.mu.Unlock()
	if sessions != 1 {
		t.Errorf("%d SMTP sessions for 4 transactions, want 1", sessions)
	}
}

// A relay that does not offer PIPELINING (smtp-sink -p) gets one command
// at a time, and every message.
func TestDeliveryWithoutPipelining(t *testing.T) {
	addr := startSmtpSink(t, "-p")
	db := openQueueDB(t, t.TempDir())
	w := mustWorker(t, db, DeliveryOptions{
		Mode: ModeSmarthost, Smarthost: addr, SmarthostTLS: "none", PollInterval: time.Hour,
	})
	for i := range 20 {
		enqueue(t, db, time.Now(), fmt.Sprint("m", i), fmt.Sprintf("u%d@a.example", i), fmt.Sprintf("v%d@a.example", i))
	}
	runWorker(t, w)
	waitIdle(t, w, db)
	for r, e := range entries(t, db) {
		if e.State != store.QueueSent {
			t.Errorf("%s: %s %q", r, e.State, e.LastReply)
		}
	}
}
