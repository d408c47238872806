package mailserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/internal/dkimtest"
	"github.com/cvd-project/cvd/internal/dnstest"
	"github.com/cvd-project/cvd/store"
)

// oddReader returns its message in reads of odd sizes (7 bytes, then
// 4093, 1, ...), so that CRLFs and line starts fall across reads. After
// failAt bytes (when > 0) it fails; with short it ends 100 bytes early.
type oddReader struct {
	msg    []byte
	off    int
	i      int
	failAt int
	short  bool
	closed *atomic.Int64
}

var oddSizes = []int{7, 4093, 1, 65539, 2, 3, 262147, 13, 131071}

var errStorage = errors.New("disk I/O error")

func (r *oddReader) Read(p []byte) (int, error) {
	end := len(r.msg)
	if r.short {
		end -= 100
	}
	if r.failAt > 0 && r.off >= r.failAt {
		return 0, errStorage
	}
	if r.off >= end {
		return 0, io.EOF
	}
	n := min(len(p), oddSizes[r.i%len(oddSizes)], end-r.off)
	if r.failAt > 0 {
		n = min(n, r.failAt-r.off)
	}
	r.i++
	copy(p, r.msg[r.off:r.off+n])
	r.off += n
	return n, nil
}

func (r *oddReader) Close() error {
	r.closed.Add(1)
	return nil
}

// streamQueue hands out the store's messages through Open instead of
// Raw, read by an oddReader as the test sets it up.
type streamQueue struct {
	storeQueue
	mu      sync.Mutex
	failAt  int  // see oddReader
	short   bool // see oddReader
	openErr error
	want    []byte // the message the test queued, when set
	opens   atomic.Int64
	closes  atomic.Int64
}

func (q *streamQueue) set(failAt int, short bool, openErr error) {
	q.mu.Lock()
	q.failAt, q.short, q.openErr = failAt, short, openErr
	q.mu.Unlock()
}

func (q *streamQueue) Claim(ctx context.Context, now time.Time, limit int, maxBytes int64, skip []string) ([]OutboundBatch, error) {
	bs, err := wholeQueue{q.storeQueue}.Claim(ctx, now, limit, maxBytes, skip)
	for i := range bs {
		raw := bs[i].Raw
		if q.want != nil && !bytes.Equal(raw, q.want) {
			return nil, errors.New("the queue changed the message: its pieces do not end where the test means")
		}
		bs[i].Raw, bs[i].Size = nil, int64(len(raw))
		bs[i].Open = func(context.Context) (io.ReadCloser, error) {
			q.opens.Add(1)
			q.mu.Lock()
			defer q.mu.Unlock()
			if q.openErr != nil {
				return nil, q.openErr
			}
			return &oddReader{msg: raw, failAt: q.failAt, short: q.short, closed: &q.closes}, nil
		}
	}
	return bs, err
}

// streamMessage is about 3 MiB whose body lines all start with a dot
// (some with two), of many lengths, some ended by a bare LF, the last
// without its end. At the ends of the pieces each reads in, in turn: a
// line starting with a dot begins the next piece; a CRLF is split; a CR
// inside a line ends a piece and a dot begins the next. It has an
// Auto-Submitted field, so the queue stores it as it is.
func streamMessage() []byte {
	var b bytes.Buffer
	b.WriteString("From: security@example.org\r\nTo: someone@example.net\r\nSubject: streamed\r\nMessage-ID: <streamed@example.org>\r\nAuto-Submitted: auto-generated\r\n\r\n")
	for i := 0; b.Len() < 3<<20; i++ {
		k := (b.Len()/readPiece + 1) * readPiece
		if dist := k - b.Len(); dist <= 1600 {
			switch k / readPiece % 3 {
			case 1:
				b.WriteString(strings.Repeat("p", dist-2) + "\r\n.dot after the piece's end\r\n")
			case 2:
				b.WriteString(strings.Repeat("p", dist-1) + "\r\ncrlf split\r\n")
			case 0:
				b.WriteString(strings.Repeat("p", dist-1) + "\r.cr inside a line\r\n")
			}
			continue
		}
		switch i % 7 {
		case 0:
			b.WriteString(".\r\n")
		case 1:
			b.WriteString("..two dots\r\n")
		case 2:
			b.WriteString(". bare lf\n")
		default:
			fmt.Fprintf(&b, ".%d %s\r\n", i, strings.Repeat("x", i%1500))
		}
	}
	b.WriteString(".last line without its end")
	return b.Bytes()
}

// A message read in odd-sized reads comes in pieces of readPiece bytes,
// at whose ends streamMessage puts its hard cases, joined back byte for
// byte; a line of 1 MiB comes in pieces of the same size. A reader that
// fails, ends early or goes on too long gives a read error, and the
// whole message is never handed on.
func TestStreamedPieces(t *testing.T) {
	long := append(streamMessage(), "\r\n."+strings.Repeat("y", 1<<20)+"\r\n.after the long line\r\n"...)
	for _, msg := range [][]byte{streamMessage(), long} {
		var closes atomic.Int64
		b := &OutboundBatch{MessageID: 7, Size: int64(len(msg)), Open: func(context.Context) (io.ReadCloser, error) {
			return &oddReader{msg: msg, closed: &closes}, nil
		}}
		var got []byte
		n := 0
		err := b.each(context.Background(), func(p []byte) error {
			if len(p) > readPiece || len(got)+len(p) < len(msg) && len(p) != readPiece {
				t.Errorf("piece %d of %d bytes", n, len(p))
			}
			n++
			got = append(got, p...)
			return nil
		})
		if err != nil || !bytes.Equal(got, msg) || n < 12 || closes.Load() != 1 {
			t.Fatalf("%d pieces, %d of %d bytes, equal %v, %d closes, err %v", n, len(got), len(msg), bytes.Equal(got, msg), closes.Load(), err)
		}
	}
	msg := streamMessage()
	for k := 1; k*readPiece < len(msg); k++ {
		at := msg[k*readPiece-2 : k*readPiece+1]
		if want := map[int]string{1: "\r\n.", 2: "p\r\n", 0: "p\r."}[k%3]; string(at) != want {
			t.Fatalf("piece end %d: %q, the test message is not built as meant", k, at)
		}
	}

	for name, r := range map[string]*oddReader{
		"fails":     {msg: msg, failAt: 1 << 20},
		"ends soon": {msg: msg, short: true},
		"too long":  {msg: append(bytes.Clone(msg), "more"...)},
	} {
		r.closed = new(atomic.Int64)
		b := &OutboundBatch{MessageID: 7, Size: int64(len(msg)), Open: func(context.Context) (io.ReadCloser, error) { return r, nil }}
		var got int
		err := b.each(context.Background(), func(p []byte) error { got += len(p); return nil })
		if !isReadError(err) || got >= len(msg) || r.closed.Load() != 1 {
			t.Errorf("%s: %v, %d bytes handed on, %d closes", name, err, got, r.closed.Load())
		}
	}
}

// A message dot-stuffed in pieces cut anywhere (dots, CRs and LFs at
// every place) is stuffed as the message whole.
func TestStufferAcrossCuts(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(".\r\nx")
	for range 2000 {
		msg := make([]byte, rng.IntN(40))
		for i := range msg {
			msg[i] = alphabet[rng.IntN(len(alphabet))]
		}
		var whole bytes.Buffer
		dotStuff(&whole, msg)
		var cut bytes.Buffer
		s := newStuffer(nil, &cut, int64(len(msg)))
		for rest := msg; len(rest) > 0; {
			n := 1 + rng.IntN(len(rest))
			if err := s.write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		s.end()
		cut.WriteString(".\r\n")
		if !bytes.Equal(cut.Bytes(), whole.Bytes()) {
			t.Fatalf("%q: stuffed in pieces %q, whole %q", msg, cut.Bytes(), whole.Bytes())
		}
	}
}

// DKIM fields of a message signed from odd pieces are those of the
// whole message, and both signatures verify.
func TestDKIMFieldsFromPieces(t *testing.T) {
	dkimtest.Available(t)
	s, records := testDKIMSigner(t)
	dns := dnstest.Start(t, records...)
	msg := streamMessage()
	b := &OutboundBatch{Size: int64(len(msg)), Open: func(context.Context) (io.ReadCloser, error) {
		return &oddReader{msg: msg, closed: new(atomic.Int64)}, nil
	}}
	var whole, pieces []byte
	for try := 0; try < 3; try++ { // t= is the signing second
		var err error
		if whole, err = s.Fields(msg); err != nil {
			t.Fatal(err)
		}
		pieces, err = s.FieldsFrom(func(write func([]byte) error) error { return b.each(context.Background(), write) })
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(whole, pieces) {
			break
		}
	}
	if !bytes.Equal(whole, pieces) {
		t.Fatalf("fields differ:\n%s\n%s", whole, pieces)
	}
	if report, ok := dkimtest.Verify(t, dns.Addr, append(pieces, msg...)); !ok {
		t.Fatalf("verifier:\n%s", report)
	}
	broken := &readError{errStorage}
	_, err := s.FieldsFrom(func(write func([]byte) error) error {
		write(msg[:1000])
		return broken
	})
	if err != broken {
		t.Errorf("read error while signing: %v", err)
	}
}

// streamTarget is where a streamed-delivery test sends: the pipelining
// sender to a go-smtp server, go-smtp's client to a server without
// PIPELINING, or the outbox. received returns the content of every
// message taken.
type streamTarget struct {
	name     string
	opts     func(t *testing.T) (DeliveryOptions, func() [][]byte)
	received func() [][]byte
}

func streamTargets() []streamTarget {
	return []streamTarget{
		{name: "pipelining", opts: func(t *testing.T) (DeliveryOptions, func() [][]byte) {
			sink := newTestSink(t, nil, false)
			return DeliveryOptions{Mode: ModeSmarthost, Smarthost: sink.Addr, SmarthostTLS: "none"}, func() [][]byte {
				var out [][]byte
				for _, txn := range sink.Txns() {
					out = append(out, txn.Data)
				}
				return out
			}
		}},
		{name: "client", opts: func(t *testing.T) (DeliveryOptions, func() [][]byte) {
			sink := newWireSinkPlain(t, true)
			return DeliveryOptions{Mode: ModeSmarthost, Smarthost: sink.addr, SmarthostTLS: "none"}, func() [][]byte {
				sink.mu.Lock()
				defer sink.mu.Unlock()
				if len(sink.protoErrs) > 0 {
					t.Errorf("protocol errors: %q", sink.protoErrs)
				}
				return append([][]byte(nil), sink.data...)
			}
		}},
		{name: "outbox", opts: func(t *testing.T) (DeliveryOptions, func() [][]byte) {
			md, err := OpenMaildir(filepath.Join(t.TempDir(), "outbox"), "test")
			if err != nil {
				t.Fatal(err)
			}
			return DeliveryOptions{Outbox: md}, func() [][]byte {
				tmp, _ := filepath.Glob(filepath.Join(md.Dir, "tmp", "*"))
				if len(tmp) > 0 {
					t.Errorf("left in tmp/: %v", tmp)
				}
				files, _ := filepath.Glob(filepath.Join(md.Dir, "new", "*"))
				var out [][]byte
				for _, f := range files {
					b, err := os.ReadFile(f)
					if err != nil {
						t.Fatal(err)
					}
					// Return-Path and Delivered-To name the row.
					_, rest, _ := bytes.Cut(b, []byte("\r\nDelivered-To: "))
					_, rest, _ = bytes.Cut(rest, []byte("\r\n"))
					out = append(out, rest)
				}
				return out
			}
		}},
	}
}

// deliverOnce queues msg to one recipient and delivers it with opts,
// through Open when streamed, and returns what the target took.
func deliverOnce(t *testing.T, tg streamTarget, msg []byte, streamed bool, dkim *DKIMSigner) [][]byte {
	db := openQueueDB(t, t.TempDir())
	opts, received := tg.opts(t)
	opts.PollInterval, opts.DKIM = time.Hour, dkim
	opts.Domain, opts.Hostname, opts.Logger = "example.org", "mail.example.org", quietLogger()
	var q OutboundQueue = wholeQueue{storeQueue{db}}
	if streamed {
		q = &streamQueue{storeQueue: storeQueue{db}, want: msg}
	}
	w, err := NewDeliveryWorker(q, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Enqueue(context.Background(), &store.OutMessage{Rcpts: []string{"one@a.example"}, Raw: msg, CreatedAt: time.Now(), Kind: "notice", Ref: "s"}); err != nil {
		t.Fatal(err)
	}
	runWorker(t, w)
	waitIdle(t, w, db)
	if e := entries(t, db)["one@a.example"]; e.State != store.QueueSent {
		t.Fatalf("%s: %s %q", tg.name, e.State, e.LastReply)
	}
	return received()
}

// A 3 MiB message given through Open, read in odd-sized reads, is
// received byte for byte as the same message given whole: through the
// pipelining sender, go-smtp's client and into the outbox; DKIM-signed,
// it verifies.
func TestDeliveryStreamedLikeRaw(t *testing.T) {
	msg := streamMessage()
	for _, tg := range streamTargets() {
		t.Run(tg.name, func(t *testing.T) {
			whole := deliverOnce(t, tg, msg, false, nil)
			streamed := deliverOnce(t, tg, msg, true, nil)
			if len(whole) != 1 || len(streamed) != 1 {
				t.Fatalf("%d messages given whole and %d streamed taken, want 1 each", len(whole), len(streamed))
			}
			if !bytes.Equal(whole[0], streamed[0]) {
				t.Fatalf("streamed message differs: %d bytes, given whole %d", len(streamed[0]), len(whole[0]))
			}
			if !bytes.Contains(whole[0], []byte("\r\n..two dots\r\n. bare lf")) {
				t.Fatalf("message not taken as sent: %q", whole[0][:200])
			}
		})
	}
	t.Run("dkim", func(t *testing.T) {
		dkimtest.Available(t)
		s, records := testDKIMSigner(t)
		dns := dnstest.Start(t, records...)
		for _, tg := range streamTargets() {
			got := deliverOnce(t, tg, msg, true, s)
			if len(got) != 1 || !bytes.HasPrefix(got[0], []byte("DKIM-Signature:")) {
				t.Fatalf("%s: %d messages, not signed", tg.name, len(got))
			}
			if report, ok := dkimtest.Verify(t, dns.Addr, got[0]); !ok {
				t.Fatalf("%s: verifier:\n%s", tg.name, report)
			}
		}
	})
}

// A message whose reader fails after 1 MiB, ends early, or cannot be
// opened is taken by no server and no outbox: its row is deferred with
// the error, and the retry with a good reader delivers it once.
func TestDeliveryStreamedReadFailure(t *testing.T) {
	msg := streamMessage()
	for _, tg := range streamTargets() {
		for _, c := range []struct {
			name    string
			failAt  int
			short   bool
			openErr error
			dkim    bool
			reply   string
		}{
			{name: "fails after 1 MiB", failAt: 1 << 20, reply: "disk I/O error"},
			{name: "ends early", short: true, reply: "bytes"},
			{name: "not opened", openErr: errStorage, reply: "disk I/O error"},
			{name: "fails while signed", failAt: 1 << 20, dkim: true, reply: "disk I/O error"},
		} {
			t.Run(tg.name+"/"+c.name, func(t *testing.T) {
				db := openQueueDB(t, t.TempDir())
				opts, received := tg.opts(t)
				clock := &fakeClock{t: start}
				opts.PollInterval, opts.Now = time.Hour, clock.Now
				opts.Domain, opts.Hostname, opts.Logger = "example.org", "mail.example.org", quietLogger()
				if c.dkim {
					opts.DKIM, _ = testDKIMSigner(t)
				}
				q := &streamQueue{storeQueue: storeQueue{db}}
				q.set(c.failAt, c.short, c.openErr)
				w, err := NewDeliveryWorker(q, opts)
				if err != nil {
					t.Fatal(err)
				}
				rcpts := []string{"one@a.example", "two@a.example"}
				if _, err := db.Enqueue(context.Background(), &store.OutMessage{Rcpts: rcpts, Raw: msg, CreatedAt: start, Kind: "notice", Ref: "s"}); err != nil {
					t.Fatal(err)
				}
				runWorker(t, w)
				waitIdle(t, w, db)
				for _, r := range rcpts {
					if e := entries(t, db)[r]; e.State != store.QueueDeferred || !strings.Contains(e.LastReply, c.reply) {
						t.Errorf("%s: %s %q, want deferred with %q", r, e.State, e.LastReply, c.reply)
					}
				}
				if got := received(); len(got) != 0 {
					t.Fatalf("%d messages taken from a failed read", len(got))
				}
				if q.closes.Load() != q.opens.Load() && c.openErr == nil {
					t.Errorf("%d readers opened, %d closed", q.opens.Load(), q.closes.Load())
				}

				q.set(0, false, nil)
				clock.Add(2 * time.Minute)
				w.Wake()
				waitIdle(t, w, db)
				for _, r := range rcpts {
					if e := entries(t, db)[r]; e.State != store.QueueSent {
						t.Errorf("retry, %s: %s %q", r, e.State, e.LastReply)
					}
				}
				got := received()
				want := len(rcpts)
				if tg.name != "outbox" {
					want = 1 // one transaction for both
				}
				if len(got) != want {
					t.Fatalf("retry: %d messages taken, want %d", len(got), want)
				}
				if len(got[0]) < len(msg) || !bytes.Contains(got[0], []byte("\r\nSubject: streamed\r\n")) || !bytes.Contains(got[0], []byte(".last line without its end")) {
					t.Errorf("retry: message taken is not the message: %q", got[0][:200])
				}
			})
		}
	}
}

// patternReader is a message of size bytes made up as it is read: a
// header, then lines that start with a dot.
type patternReader struct {
	size, off int64
}

const patternHead = "From: security@example.org\r\nTo: someone@example.net\r\nSubject: large\r\n\r\n"

var patternLine = "." + strings.Repeat("0123456789", 9) + "abcdefg\r\n"

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.off < r.size {
		var src string
		var at int64
		if r.off < int64(len(patternHead)) {
			src, at = patternHead, r.off
		} else {
			src, at = patternLine, (r.off-int64(len(patternHead)))%int64(len(patternLine))
		}
		k := copy(p[n:], src[at:min(int64(len(src)), at+r.size-r.off)])
		n += k
		r.off += int64(k)
	}
	return n, nil
}

func (r *patternReader) Close() error { return nil }

// wholeQueue hands out every message whole in Raw, as the store does
// for a message up to store.StreamOver, whatever its size.
type wholeQueue struct{ storeQueue }

func (q wholeQueue) Claim(ctx context.Context, now time.Time, limit int, maxBytes int64, skip []string) ([]OutboundBatch, error) {
	bs, err := q.storeQueue.Claim(ctx, now, limit, maxBytes, skip)
	for i := range bs {
		if bs[i].Raw != nil || bs[i].Open == nil {
			continue
		}
		r, oerr := bs[i].Open(ctx)
		if oerr != nil {
			return nil, oerr
		}
		raw, rerr := io.ReadAll(r)
		r.Close()
		if rerr != nil {
			return nil, rerr
		}
		bs[i].Raw, bs[i].Open = raw, nil
	}
	return bs, err
}

// patternQueue hands out the store's messages as a made-up message of
// size bytes read through Open.
type patternQueue struct {
	storeQueue
	size int64
}

func (q patternQueue) Claim(ctx context.Context, now time.Time, limit int, maxBytes int64, skip []string) ([]OutboundBatch, error) {
	bs, err := q.storeQueue.Claim(ctx, now, limit, maxBytes, skip)
	for i := range bs {
		bs[i].Raw, bs[i].Size = nil, q.size
		bs[i].Open = func(context.Context) (io.ReadCloser, error) { return &patternReader{size: q.size}, nil }
	}
	return bs, err
}

// recordedQueue closes done after the first outcomes were recorded, so
// that the test waits without reading the queue in the meantime.
type recordedQueue struct {
	OutboundQueue
	done chan struct{}
	once sync.Once
}

func (q *recordedQueue) Record(ctx context.Context, now time.Time, rs []DeliveryResult) error {
	err := q.OutboundQueue.Record(ctx, now, rs)
	q.once.Do(func() { close(q.done) })
	return err
}

// A 20 MiB message given through Open is sent (to Postfix's smtp-sink,
// another process, with and without PIPELINING) with less than 4 MiB
// allocated in all: it is never held whole. Beside it, the same message
// claimed whole from the store.
func TestDeliveryStreamedMemory(t *testing.T) {
	const size = 20 << 20
	for _, sinkArgs := range [][]string{nil, {"-p"}} {
		addr := startSmtpSink(t, sinkArgs...)
		measure := func(streamed bool) uint64 {
			db := openQueueDB(t, t.TempDir())
			var q OutboundQueue = wholeQueue{storeQueue{db}}
			raw := []byte("Subject: placeholder\r\n\r\n.\r\n")
			if streamed {
				q = patternQueue{storeQueue{db}, size}
			} else {
				r := &patternReader{size: size}
				raw, _ = io.ReadAll(r)
			}
			if _, err := db.Enqueue(context.Background(), &store.OutMessage{Rcpts: []string{"one@a.example"}, Raw: raw, CreatedAt: time.Now(), Kind: "notice", Ref: "big"}); err != nil {
				t.Fatal(err)
			}
			raw = nil
			rq := &recordedQueue{OutboundQueue: q, done: make(chan struct{})}
			w, err := NewDeliveryWorker(rq, DeliveryOptions{
				Mode: ModeSmarthost, Smarthost: addr, SmarthostTLS: "none", PollInterval: time.Hour,
				Domain: "example.org", Hostname: "mail.example.org", Logger: quietLogger(),
			})
			if err != nil {
				t.Fatal(err)
			}
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			select {
			case <-rq.done:
			case <-time.After(time.Minute):
				t.Fatal("not recorded in a minute")
			}
			runtime.ReadMemStats(&ms)
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if e := entries(t, db)["one@a.example"]; e.State != store.QueueSent {
				t.Fatalf("%s %q", e.State, e.LastReply)
			}
			return ms.TotalAlloc - before
		}
		whole, streamed := measure(false), measure(true)
		t.Logf("smtp-sink %q: %d MiB message: %.1f MiB allocated claimed whole, %.1f MiB streamed",
			sinkArgs, size>>20, float64(whole)/(1<<20), float64(streamed)/(1<<20))
		if streamed > 4<<20 {
			t.Errorf("%.1f MiB allocated to send a %d MiB message streamed", float64(streamed)/(1<<20), size>>20)
		}
	}
}

// The header of a message given in pieces, cut anywhere, needs SMTPUTF8
// exactly when the same message given whole does.
func TestHeadScanLikeWhole(t *testing.T) {
	for _, msg := range []string{
		"Subject: caf\xc3\xa9\r\n\r\nbody",
		"Subject: cafe\r\n\r\nbody caf\xc3\xa9",
		"Subject: cafe\r\nno header end caf\xc3\xa9",
		"Subject: cafe\r\n\r\n",
		"Subject: cafe\n\ncaf\xc3\xa9 after bare LFs",
		"\r\n\r\ncaf\xc3\xa9",
		"",
	} {
		want := needsSMTPUTF8(&job{batch: &OutboundBatch{Raw: []byte(msg)}})
		for i := 0; i <= len(msg); i++ {
			for k := i; k <= len(msg); k++ {
				var h headScan
				for _, p := range []string{msg[:i], msg[i:k], msg[k:]} {
					h.write([]byte(p))
				}
				if h.utf8 != want {
					t.Fatalf("%q cut at %d and %d: SMTPUTF8 %v, given whole %v", msg, i, k, h.utf8, want)
				}
			}
		}
	}
}

// A large message to a server that takes its data slowly (for longer
// than the command timeout in all) is delivered: each write of the data
// has the timeout, not the whole message, as RFC 5321 4.5.3.2.5 has it.
func TestDeliverySlowReceiver(t *testing.T) {
	// The server reads 6.4 MB/s: the 32 MiB take 5 s, of which at most
	// the sender's socket buffer (4 MiB) after the last write.
	const size, timeout = 32 << 20, 3 * time.Second
	sink := newTestSinkOn(t, nil, false, func(srv *smtp.Server, l net.Listener) net.Listener {
		srv.ReadTimeout = time.Minute
		return smallBufferListener{l}
	})
	db := openQueueDB(t, t.TempDir())
	w, err := NewDeliveryWorker(patternQueue{storeQueue{db}, size}, DeliveryOptions{
		Mode: ModeSmarthost, Smarthost: sink.Addr, SmarthostTLS: "none", CommandTimeout: timeout,
		PollInterval: time.Hour, Domain: "example.org", Hostname: "mail.example.org", Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Enqueue(context.Background(), &store.OutMessage{Rcpts: []string{"dataslow@a.example"}, Raw: []byte("Subject: placeholder\r\n\r\n.\r\n"), CreatedAt: time.Now(), Kind: "notice", Ref: "big"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	runWorker(t, w)
	waitIdle(t, w, db)
	took := time.Since(start)
	e := entries(t, db)["dataslow@a.example"]
	if e.State != store.QueueSent {
		t.Fatalf("after %v: %s %q", took.Round(time.Millisecond), e.State, e.LastReply)
	}
	if txns := sink.Txns(); len(txns) != 1 || len(txns[0].Data) < size {
		t.Fatalf("the server took %d messages", len(txns))
	}
	if took < timeout {
		t.Fatalf("sent in %v, within the timeout: the test proves nothing", took)
	}
}
