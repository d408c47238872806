package mailserver

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
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

// wireSink is an SMTP server on loopback that reads the wire itself, to
// see what a client sends before it gets a reply. Before answering the
// end of a message's data it waits up to a second for more bytes, and
// counts the messages after which the next command had arrived already.
// A recipient starting with "datasoft" gets 451 at the end of the data.
// With plain set it does not offer PIPELINING.
type wireSink struct {
	addr  string
	plain bool

	mu        sync.Mutex
	messages  []string // recipients of the messages taken
	data      [][]byte // their content, dot-unstuffed
	early     int      // ends of data followed at once by the next command
	resets    int
	sessions  int
	protoErrs []string
}

func newWireSink(t *testing.T) *wireSink { return newWireSinkPlain(t, false) }

func newWireSinkPlain(t *testing.T, plain bool) *wireSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &wireSink{addr: ln.Addr().String(), plain: plain}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *wireSink) fail(format string, args ...any) {
	s.mu.Lock()
	s.protoErrs = append(s.protoErrs, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

func (s *wireSink) serve(c net.Conn) {
	defer c.Close()
	s.mu.Lock()
	s.sessions++
	s.mu.Unlock()
	r := bufio.NewReader(c)
	fmt.Fprint(c, "220 wire.example ESMTP\r\n")
	var rcpts []string
	inTxn := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimRight(line, "\r\n"))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			if s.plain {
				fmt.Fprint(c, "250-wire.example\r\n250 8BITMIME\r\n")
			} else {
				fmt.Fprint(c, "250-wire.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
			}
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			if inTxn {
				s.fail("MAIL inside a transaction")
			}
			inTxn, rcpts = true, nil
			fmt.Fprint(c, "250 2.1.0 ok\r\n")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			rcpts = append(rcpts, strings.Trim(line[len("RCPT TO:"):len(line)-2], "<>"))
			fmt.Fprint(c, "250 2.1.5 ok\r\n")
		case cmd == "DATA":
			if !inTxn || len(rcpts) == 0 {
				s.fail("DATA without MAIL and RCPT")
				fmt.Fprint(c, "503 5.5.1 no\r\n")
				continue
			}
			fmt.Fprint(c, "354 go on\r\n")
			var data []byte
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data = append(data, strings.TrimPrefix(l, ".")...)
			}
			inTxn = false
			c.SetReadDeadline(time.Now().Add(time.Second))
			_, err := r.Peek(1)
			c.SetReadDeadline(time.Time{})
			s.mu.Lock()
			if err == nil {
				s.early++
			}
			s.mu.Unlock()
			if strings.HasPrefix(rcpts[0], "datasoft") {
				fmt.Fprint(c, "451 4.3.0 try again later\r\n")
				continue
			}
			s.mu.Lock()
			s.messages = append(s.messages, strings.Join(rcpts, ","))
			s.data = append(s.data, data)
			s.mu.Unlock()
			fmt.Fprint(c, "250 2.0.0 queued\r\n")
		case cmd == "RSET":
			s.mu.Lock()
			s.resets++
			s.mu.Unlock()
			inTxn = false
			fmt.Fprint(c, "250 2.0.0 ok\r\n")
		case cmd == "QUIT":
			fmt.Fprint(c, "221 2.0.0 bye\r\n")
			return
		default:
			s.fail("unexpected %q", line)
			fmt.Fprint(c, "500 5.5.1 what\r\n")
		}
	}
}

// Over one connection, the next message's MAIL, RCPT and DATA go out with
// the previous message's data, before its reply (one round trip a
// message). A message refused at the end of its data is deferred alone:
// the one whose transaction had started already is delivered, with no
// RSET in between to take its replies.
func TestDeliveryNextTransactionWithData(t *testing.T) {
	sink := newWireSink(t)
	db := openQueueDB(t, t.TempDir())
	clock := &fakeClock{t: start}
	w := mustWorker(t, db, DeliveryOptions{
		Mode: ModeSmarthost, Smarthost: sink.addr, SmarthostTLS: "none",
		Now: clock.Now, PollInterval: time.Hour, PerDestination: 1,
	})
	enqueue(t, db, start, "m1", "one@a.example")
	enqueue(t, db, start, "m2", "datasoft@b.example")
	enqueue(t, db, start, "m3", "three@c.example", "four@c.example")
	enqueue(t, db, start, "m4", "five@d.example")
	runWorker(t, w)
	waitIdle(t, w, db)

	es := entries(t, db)
	for _, r := range []string{"one@a.example", "three@c.example", "four@c.example", "five@d.example"} {
		if e := es[r]; e.State != store.QueueSent {
			t.Errorf("%s: %s %q", r, e.State, e.LastReply)
		}
	}
	if e := es["datasoft@b.example"]; e.State != store.QueueDeferred || !strings.Contains(e.LastReply, "451 4.3.0") {
		t.Errorf("datasoft: %s %q", e.State, e.LastReply)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if got := strings.Join(sink.messages, " "); got != "one@a.example three@c.example,four@c.example five@d.example" {
		t.Errorf("sink took %q", got)
	}
	// Three of the four ends of data had the next transaction behind them.
	if sink.early != 3 || sink.sessions != 1 || sink.resets != 0 || len(sink.protoErrs) > 0 {
		t.Errorf("next transaction sent early after %d of 4 messages (want 3), %d sessions, %d RSETs, errors %q",
			sink.early, sink.sessions, sink.resets, sink.protoErrs)
	}
}
