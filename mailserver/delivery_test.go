package mailserver

import (
	"bytes"
	"context"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cvd-project/cvd/store"
)

func newPool(t testing.TB, certPEM []byte) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("bad test certificate")
	}
	return pool
}

func TestDeliveryStatesAndMultiRecipientTransactions(t *testing.T) {
	sink := newTestSink(t, nil, false)
	db := openQueueDB(t, t.TempDir())
	clock := &fakeClock{t: start}
	var mu sync.Mutex
	var failures []FailedDelivery
	w := mustWorker(t, db, DeliveryOptions{
		Mode: ModeSmarthost, Smarthost: sink.Addr, SmarthostTLS: "none",
		Now: clock.Now, PollInterval: time.Hour,
		OnFailure: func(_ context.Context, f FailedDelivery) {
			mu.Lock()
			failures = append(failures, f)
			mu.Unlock()
		},
	})
	enqueue(t, db, start, "m1", "ok1@a.example", "soft1@a.example", "ok2@a.example", "hard1@a.example", "ok3@b.example")
	runWorker(t, w)
	waitIdle(t, w, db)

	txns := sink.Txns()
	if len(txns) != 2 {
		t.Fatalf("sink got %d transactions, want 2 (one per domain): %+v", len(txns), txns)
	}
	es := entries(t, db)
	var multi sinkTxn
	for _, tx := range txns {
		if len(tx.To) == 2 {
			multi = tx
		}
	}
	if strings.Join(multi.To, ",") != "ok1@a.example,ok2@a.example" {
		t.Errorf("multi-recipient transaction to %v", multi.To)
	}
	if want := ReturnPath(es["ok1@a.example"].Token, "example.org"); multi.From != want {
		t.Errorf("MAIL FROM %q, want the first row's VERP address %q", multi.From, want)
	}
	if multi.Helo != "mail.example.org" {
		t.Errorf("EHLO %q", multi.Helo)
	}
	if !bytes.Contains(multi.Data, []byte("Message-ID: <m1@example.org>")) {
		t.Errorf("data = %q", multi.Data)
	}
	for _, r := range []string{"ok1@a.example", "ok2@a.example", "ok3@b.example"} {
		if e := es[r]; e.State != store.QueueSent || e.Attempts != 1 || !strings.Contains(e.LastReply, "250") {
			t.Errorf("%s: %+v", r, e)
		}
	}
	soft := es["soft1@a.example"]
	if soft.State != store.QueueDeferred || soft.Attempts != 1 || !soft.NextAttempt.Equal(start.Add(time.Minute)) || !strings.Contains(soft.LastReply, "451 4.3.0 try again later") {
		t.Errorf("soft: %+v", soft)
	}
	hard := es["hard1@a.example"]
	if hard.State != store.QueueFailed || !strings.Contains(hard.LastReply, "550 5.1.1") {
		t.Errorf("hard: %+v", hard)
	}
	mu.Lock()
	if len(failures) != 1 || failures[0].Rcpt != "hard1@a.example" || failures[0].Kind != "notice" || failures[0].Ref != "m1" || failures[0].ID != hard.ID {
		t.Errorf("failure hook got %+v", failures)
	}
	mu.Unlock()
}

func TestDeliveryBackoffUntilMaxAge(t *testing.T) {
	sink := newTestSink(t, nil, false)
	db := openQueueDB(t, t.TempDir())
	clock := &fakeClock{t: start}
	w := mustWorker(t, db, DeliveryOptions{
		Mode: ModeSmarthost, Smarthost: sink.Addr, SmarthostTLS: "none",
		Now: clock.Now, PollInterval: time.Hour, MaxAge: 24 * time.Hour,
	})
	enqueue(t, db, start, "m1", "soft@a.example")
	runWorker(t, w)
	waitIdle(t, w, db)

	wantWaits := []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 4 * time.Hour, 4 * time.Hour}
	for i, want := range wantWaits {
		e := entries(t, db)["soft@a.example"]
		if e.State != store.QueueDeferred || e.Attempts != i+1 || !e.NextAttempt.Equal(clock.Now().Add(want)) {
			t.Fatalf("after attempt %d: %+v; want deferred by %v from %v", i+1, e, want, clock.Now())
		}
		// Nothing happens before the row is due.
		clock.Add(want - time.Second)
		w.Wake()
		waitIdle(t, w, db)
		if e2 := entries(t, db)["soft@a.example"]; e2.Attempts != i+1 {
			t.Fatalf("retried %v early", time.Second)
		}
		clock.Add(time.Second)
		w.Wake()
		waitIdle(t, w, db)
	}
	// Attempts at 0, 1m, 6m, 36m, 2h36m, 6h36m, 10h36m, then every 4h; the last
	// one cut at the maximum age, when the row fails.
	for i := 0; i < 10; i++ {
		e := entries(t, db)["soft@a.example"]
		if e.State != store.QueueDeferred {
			break
		}
		if deadline := start.Add(24 * time.Hour); e.NextAttempt.After(deadline) {
			t.Fatalf("next attempt %v after the maximum age %v", e.NextAttempt, deadline)
		}
		clock.t = e.NextAttempt
		w.Wake()
		waitIdle(t, w, db)
	}
	e := entries(t, db)["soft@a.example"]
	if e.State != store.QueueFailed || !strings.HasPrefix(e.LastReply, "gave up after 11 attempts over 24h0m0s: ") || !strings.Contains(e.LastReply, "451") {
		t.Errorf("after the maximum age: %+v", e)
	}
	if !clock.Now().Equal(start.Add(24 * time.Hour)) {
		t.Errorf("last attempt at %v, want at the maximum age", clock.Now())
	}
}

func TestDeliveryDataRepliesAndDrops(t *testing.T) {
	sink := newTestSink(t, nil, false)
	db := openQueueDB(t, t.TempDir())
	clock := &fakeClock{t: start}
	w := mustWorker(t, db, DeliveryOptions{
		Mode: ModeSmarthost, Smarthost: sink.Addr, SmarthostTLS: "none",
		Now: clock.Now, PollInterval: time.Hour, PerDestination: 1,
	})
	enqueue(t, db, start, "m1", "datasoft@a.example", "x1@a.example")
	enqueue(t, db, start, "m2", "datahard@b.example", "x2@b.example")
	enqueue(t, db, start, "m3", "datadrop@c.example", "x3@c.example")
	enqueue(t, db, start, "m4", "drop@d.example", "x4@d.example")
	enqueue(t, db, start, "m5", "ok@e.example")
	runWorker(t, w)
	waitIdle(t, w, db)
	es := entries(t, db)
	check := func(rcpt, state, reply string) {
		t.Helper()
		if e := es[rcpt]; e.State != state || !strings.Contains(e.LastReply, reply) {
			t.Errorf("%s: %s %q; want %s with %q", rcpt, e.State, e.LastReply, state, reply)
		}
	}
	// A reply to the end of DATA applies to every accepted recipient.
	check("datasoft@a.example", store.QueueDeferred, "451")
	check("x1@a.example", store.QueueDeferred, "451")
	check("datahard@b.example", store.QueueFailed, "550")
	check("x2@b.example", store.QueueFailed, "550")
	// A dropped connection defers, and the next job gets a new connection.
	check("datadrop@c.example", store.QueueDeferred, "")
	check("x3@c.example", store.QueueDeferred, "")
	check("drop@d.example", store.QueueDeferred, "")
	check("x4@d.example", store.QueueDeferred, "")
	check("ok@e.example", store.QueueSent, "250")
	if n := len(sink.Txns()); n != 1 {
		t.Errorf("sink stored %d messages, want 1", n)
	}
}

func TestDeliveryConnectionRefusedDefers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	db := openQueueDB(t, t.TempDir())
	clock := &fakeClock{t: start}
	w := mustWorker(t, db, DeliveryOptions{Mode: ModeSmarthost, Smarthost: addr, SmarthostTLS: "none", Now: clock.Now, PollInterval: time.Hour})
	enqueue(t, db, start, "m1", "a@a.example", "b@b.example")
	runWorker(t, w)
	waitIdle(t, w, db)
	for r, e := range entries(t, db) {
		if e.State != store.QueueDeferred || !strings.Contains(e.LastReply, "refused") {
			t.Errorf("%s: %+v", r, e)
		}
	}
}

func TestDeliverySmarthostTLSAndAuth(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	for _, mode := range []string{"starttls", "tls"} {
		t.Run(mode, func(t *testing.T) {
			sink := newTestSink(t, serverTLS, mode == "tls")
			sink.authUser, sink.authPass = "cvd", "s3cret"
			db := openQueueDB(t, t.TempDir())
			w := mustWorker(t, db, DeliveryOptions{
				Mode: ModeSmarthost, Smarthost: sink.Addr, SmarthostTLS: mode, TLSConfig: clientTLS,
				Username: "cvd", Password: "s3cret", PollInterval: time.Hour,
			})
			enqueue(t, db, time.Now(), "m1", "ok@a.example")
			runWorker(t, w)
			waitIdle(t, w, db)
			txns := sink.Txns()
			if len(txns) != 1 || !txns[0].TLS || txns[0].User != "cvd" || txns[0].Helo != "mail.example.org" {
				t.Fatalf("sink got %+v; want one message over TLS, authenticated as cvd; queue: %+v", txns, entries(t, db))
			}
		})
	}
	t.Run("bad password defers", func(t *testing.T) {
		sink := newTestSink(t, serverTLS, false)
		sink.authUser, sink.authPass = "cvd", "right"
		db := openQueueDB(t, t.TempDir())
		w := mustWorker(t, db, DeliveryOptions{
			Mode: ModeSmarthost, Smarthost: sink.Addr, TLSConfig: clientTLS,
			Username: "cvd", Password: "wrong", PollInterval: time.Hour,
		})
		enqueue(t, db, time.Now(), "m1", "ok@a.example")
		runWorker(t, w)
		waitIdle(t, w, db)
		if e := entries(t, db)["ok@a.example"]; e.State != store.QueueDeferred || !strings.Contains(e.LastReply, "AUTH") {
			t.Errorf("%+v", e)
		}
	})
	t.Run("untrusted certificate defers", func(t *testing.T) {
		sink := newTestSink(t, serverTLS, false)
		db := openQueueDB(t, t.TempDir())
		w := mustWorker(t, db, DeliveryOptions{Mode: ModeSmarthost, Smarthost: sink.Addr, PollInterval: time.Hour})
		enqueue(t, db, time.Now(), "m1", "ok@a.example")
		runWorker(t, w)
		waitIdle(t, w, db)
		if e := entries(t, db)["ok@a.example"]; e.State != store.QueueDeferred || !strings.Contains(e.LastReply, "certificate") {
			t.Errorf("%+v", e)
		}
		if len(sink.Txns()) != 0 {
			t.Error("delivered over an unverified connection")
		}
	})
	t.Run("STARTTLS required but not offered", func(t *testing.T) {
		sink := newTestSink(t, nil, false)
		db := openQueueDB(t, t.TempDir())
		w := mustWorker(t, db, DeliveryOptions{Mode: ModeSmarthost, Smarthost: sink.Addr, PollInterval: time.Hour})
		enqueue(t, db, time.Now(), "m1", "ok@a.example")
		runWorker(t, w)
		waitIdle(t, w, db)
		if e := entries(t, db)["ok@a.example"]; e.State != store.QueueDeferred || !strings.Contains(e.LastReply, "STARTTLS") {
			t.Errorf("%+v", e)
		}
	})
}

func TestDeliveryMX(t *testing.T) {
	serverTLS, _ := testTLS(t)
	tlsSink := newTestSink(t, serverTLS, false)
	_, port, _ := net.SplitHostPort(tlsSink.Addr)
	plainSink := newTestSink(t, nil, false)
	_, plainPort, _ := net.SplitHostPort(plainSink.Addr)
	if plainPort == port {
		t.Fatalf("two listeners on port %s", port)
	}
	resolver := stubResolver{
		// 127.0.0.2 refuses (the sink listens on 127.0.0.1 only): the
		// second MX by preference is used.
		"a.example":      {{Host: "127.0.0.1.", Pref: 20}, {Host: "127.0.0.2.", Pref: 10}},
		"nullmx.example": {{Host: ".", Pref: 0}},
		"down.example":   {{Host: "127.0.0.2.", Pref: 10}},
	}
	db := openQueueDB(t, t.TempDir())
	clock := &fakeClock{t: start}
	var p int
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	w := mustWorker(t, db, DeliveryOptions{Mode: ModeMX, Resolver: resolver, MXPort: p, Now: clock.Now, PollInterval: time.Hour})
	enqueue(t, db, start, "m1", "ok1@a.example", "ok2@a.example", "x@nullmx.example", "y@down.example", "z@localhost")
	runWorker(t, w)
	waitIdle(t, w, db)
	es := entries(t, db)
	txns := tlsSink.Txns()
	// localhost has no MX: its A/AAAA record is used, the same sink.
	if len(txns) != 2 {
		t.Fatalf("sink got %d transactions: %+v", len(txns), txns)
	}
	for _, tx := range txns {
		if !tx.TLS || tx.Helo != "mail.example.org" {
			t.Errorf("transaction without STARTTLS or with EHLO %q: %+v", tx.Helo, tx.To)
		}
	}
	for _, r := range []string{"ok1@a.example", "ok2@a.example", "z@localhost"} {
		if es[r].State != store.QueueSent {
			t.Errorf("%s: %+v", r, es[r])
		}
	}
	if e := es["x@nullmx.example"]; e.State != store.QueueFailed || !strings.Contains(e.LastReply, "null MX") {
		t.Errorf("null MX: %+v", e)
	}
	if e := es["y@down.example"]; e.State != store.QueueDeferred || !strings.Contains(e.LastReply, "refused") {
		t.Errorf("unreachable MX: %+v", e)
	}
}

func TestDeliveryOutbox(t *testing.T) {
	dir := t.TempDir()
	md, err := OpenMaildir(filepath.Join(dir, "outbox"), "test")
	if err != nil {
		t.Fatal(err)
	}
	db := openQueueDB(t, dir)
	w := mustWorker(t, db, DeliveryOptions{Outbox: md, PollInterval: time.Hour})
	enqueue(t, db, time.Now(), "m1", "a@a.example", "b@a.example")
	runWorker(t, w)
	waitIdle(t, w, db)
	files, _ := filepath.Glob(filepath.Join(md.Dir, "new", "*"))
	if len(files) != 2 {
		t.Fatalf("%d files in the outbox, want one per recipient", len(files))
	}
	es := entries(t, db)
	seen := map[string]bool{}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, r := range []string{"a@a.example", "b@a.example"} {
			if bytes.HasPrefix(b, []byte("Return-Path: <security+bounce-"+es[r].Token+"@example.org>\r\nDelivered-To: "+r+"\r\n")) {
				seen[r] = true
			}
		}
		if !bytes.Contains(b, []byte("Auto-Submitted: auto-generated\r\n")) {
			t.Errorf("%s lacks Auto-Submitted", f)
		}
	}
	if len(seen) != 2 || es["a@a.example"].State != store.QueueSent {
		t.Errorf("outbox files %v, rows %+v", seen, es)
	}
}

func TestDeliveryRecoversSendingAndWakes(t *testing.T) {
	sink := newTestSink(t, nil, false)
	db := openQueueDB(t, t.TempDir())
	clock := &fakeClock{t: start}
	enqueue(t, db, start, "m1", "ok1@a.example")
	// An earlier run claimed it and died.
	if bs, err := db.ClaimQueue(context.Background(), start, 10, nil); err != nil || len(bs) != 1 {
		t.Fatal(bs, err)
	}
	w := mustWorker(t, db, DeliveryOptions{Mode: ModeSmarthost, Smarthost: sink.Addr, SmarthostTLS: "none", Now: clock.Now, PollInterval: time.Hour})
	runWorker(t, w)
	waitIdle(t, w, db)
	if e := entries(t, db)["ok1@a.example"]; e.State != store.QueueSent {
		t.Fatalf("interrupted row not delivered after restart: %+v", e)
	}
	// New mail goes out on Wake, without waiting for the hour-long poll.
	enqueue(t, db, start, "m2", "ok2@a.example")
	w.Wake()
	deadline := time.Now().Add(60 * time.Second)
	for len(sink.Txns()) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if len(sink.Txns()) != 2 {
		t.Fatal("Wake did not deliver new mail")
	}
}

func TestDeliveryPerDestinationLimit(t *testing.T) {
	sink := newTestSink(t, nil, false)
	db := openQueueDB(t, t.TempDir())
	for i := range 60 {
		enqueue(t, db, start, "m", sprintRcpts("ok", 1, []string{"a.example", "b.example"}[i%2])[0])
	}
	w := mustWorker(t, db, DeliveryOptions{Mode: ModeSmarthost, Smarthost: sink.Addr, SmarthostTLS: "none", PerDestination: 2, Now: (&fakeClock{t: start}).Now, PollInterval: time.Hour})
	runWorker(t, w)
	waitIdle(t, w, db)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.txns) != 60 || sink.maxOpen > 2 || sink.sessions > 2 {
		t.Errorf("%d messages over %d sessions, %d at once; want 60 over at most 2 reused connections", len(sink.txns), sink.sessions, sink.maxOpen)
	}
}

func TestDeliveryShutdownLeavesNothingSending(t *testing.T) {
	sink := newTestSink(t, nil, false)
	db := openQueueDB(t, t.TempDir())
	for range 300 {
		enqueue(t, db, start, "m", "ok@a.example")
	}
	w := mustWorker(t, db, DeliveryOptions{Mode: ModeSmarthost, Smarthost: sink.Addr, SmarthostTLS: "none", PerDestination: 1, Window: 64})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	for len(sink.Txns()) < 10 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	all, _ := db.ListQueue(context.Background(), store.QueueFilter{Limit: 1000})
	counts := map[string]int{}
	for _, e := range all {
		counts[e.State]++
	}
	if counts[store.QueueSending] != 0 || counts[store.QueueSent] != len(sink.Txns()) || counts[store.QueueQueued] == 0 {
		t.Errorf("after shutdown: %v, sink has %d", counts, len(sink.Txns()))
	}
}
