package mailserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/store"
)

// storeQueue adapts store.DB to OutboundQueue, as cmd/cvd does.
type storeQueue struct{ db *store.DB }

func (q storeQueue) Recover(ctx context.Context, now time.Time) (int, error) {
	return q.db.RecoverQueue(ctx, now)
}

func (q storeQueue) Claim(ctx context.Context, now time.Time, limit int, maxBytes int64, skip []string) ([]OutboundBatch, error) {
	bs, err := q.db.ClaimQueueBytes(ctx, now, limit, maxBytes, skip)
	if err != nil {
		return nil, err
	}
	out := make([]OutboundBatch, len(bs))
	for i, b := range bs {
		rs := make([]OutboundRcpt, len(b.Rcpts))
		for k, r := range b.Rcpts {
			rs[k] = OutboundRcpt(r)
		}
		out[i] = OutboundBatch{MessageID: b.MessageID, Domain: b.Domain, Kind: b.Kind, Ref: b.Ref, CreatedAt: b.CreatedAt, Raw: b.Raw, Open: b.Open, Size: b.Size, Rcpts: rs}
	}
	return out, nil
}

func (q storeQueue) Record(ctx context.Context, now time.Time, rs []DeliveryResult) error {
	out := make([]store.QueueOutcome, len(rs))
	for i, r := range rs {
		out[i] = store.QueueOutcome(r)
	}
	return q.db.RecordQueue(ctx, now, out)
}

func (q storeQueue) NextDue(ctx context.Context) (time.Time, bool, error) {
	return q.db.NextQueueDue(ctx)
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var start = time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)

func openQueueDB(t testing.TB, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(dir, "cvd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// runWorker starts w and stops it at the end of the test.
func runWorker(t testing.TB, w *DeliveryWorker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// waitIdle waits until nothing is due at now, in sending, or in flight.
// A row goes from due to sending (claimed) to in flight (dispatched) and
// is recorded before it leaves the flight, so the three are read in that
// order: a row moving on between two reads is seen by the later one.
func waitIdle(t testing.TB, w *DeliveryWorker, db *store.DB) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		due, ok, err := db.NextQueueDue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !ok || due.After(w.opts.Now()) {
			sending, err := db.ListQueue(ctx, store.QueueFilter{States: []string{store.QueueSending}, Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(sending) == 0 && w.inFlight() == 0 {
				return
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("delivery did not settle in 60s: %+v", entries(t, db))
}

func entries(t testing.TB, db *store.DB) map[string]store.QueueEntry {
	t.Helper()
	all, err := db.ListQueue(context.Background(), store.QueueFilter{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]store.QueueEntry{}
	for _, e := range all {
		m[e.Rcpt] = e
	}
	return m
}

func queuedMessage(id string) []byte {
	return []byte("From: security@example.org\r\nTo: someone@example.net\r\nMessage-ID: <" + id + "@example.org>\r\nSubject: test\r\n\r\nbody of " + id + "\r\n")
}

// sinkTxn is one transaction received by the test sink.
type sinkTxn struct {
	From string
	To   []string
	Data []byte
	TLS  bool
	Helo string
	User string
}

// testSink is a go-smtp server on loopback whose answers depend on the
// recipient's local part: "soft..." gets 451 at RCPT, "hard..." 550,
// "drop..." has the connection closed; "datasoft..."/"datahard..." and
// "datadrop..." do the same at the end of DATA.
type testSink struct {
	srv  *smtp.Server
	Addr string

	mu       sync.Mutex
	txns     []sinkTxn
	sessions int
	maxOpen  int
	open     int
	authUser string
	authPass string
}

func newTestSink(t testing.TB, tlsConfig *tls.Config, implicitTLS bool) *testSink {
	return newTestSinkOn(t, tlsConfig, implicitTLS, func(_ *smtp.Server, l net.Listener) net.Listener { return l })
}

// newTestSinkOn is newTestSink that lets setup change the server and
// wrap its listener before it serves.
func newTestSinkOn(t testing.TB, tlsConfig *tls.Config, implicitTLS bool, setup func(*smtp.Server, net.Listener) net.Listener) *testSink {
	t.Helper()
	s := &testSink{}
	srv := smtp.NewServer(s)
	srv.Domain = "sink.test"
	srv.TLSConfig = tlsConfig
	srv.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	s.srv = srv
	var ln net.Listener
	var err error
	if implicitTLS {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", tlsConfig)
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	ln = setup(srv, ln)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

// slowReader takes the data of a message to a "dataslow" recipient
// slowly: 64 KiB every 10 ms.
type slowReader struct{ r io.Reader }

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(10 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 64<<10)])
}

// smallBufferListener accepts connections with a receive buffer of 64
// KiB, so that what a sender has written is soon all read or waiting.
type smallBufferListener struct{ net.Listener }

func (l smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(64 << 10)
	}
	return c, err
}

func (s *testSink) Txns() []sinkTxn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkTxn(nil), s.txns...)
}

func (s *testSink) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	s.mu.Lock()
	s.sessions++
	s.open++
	s.maxOpen = max(s.maxOpen, s.open)
	s.mu.Unlock()
	return &sinkSession{s: s, c: c, txn: sinkTxn{TLS: isTLS, Helo: c.Hostname()}}, nil
}

type sinkSession struct {
	s   *testSink
	c   *smtp.Conn
	txn sinkTxn
}

var (
	errSoft = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	errHard = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
)

func (ss *sinkSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *sinkSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		ss.s.mu.Lock()
		defer ss.s.mu.Unlock()
		if user != ss.s.authUser || pass != ss.s.authPass {
			return errors.New("bad credentials")
		}
		ss.txn.User = user
		return nil
	}), nil
}

func (ss *sinkSession) Reset() {
	ss.txn = sinkTxn{TLS: ss.txn.TLS, Helo: ss.txn.Helo, User: ss.txn.User}
}

func (ss *sinkSession) Logout() error {
	ss.s.mu.Lock()
	ss.s.open--
	ss.s.mu.Unlock()
	return nil
}

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.txn.From = from
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	switch {
	case strings.HasPrefix(to, "soft"):
		return errSoft
	case strings.HasPrefix(to, "hard"):
		return errHard
	case strings.HasPrefix(to, "drop"):
		ss.c.Conn().Close()
		return errSoft
	}
	ss.txn.To = append(ss.txn.To, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	if len(ss.txn.To) > 0 && strings.HasPrefix(ss.txn.To[0], "dataslow") {
		r = &slowReader{r: r}
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	for _, to := range ss.txn.To {
		switch {
		case strings.HasPrefix(to, "datasoft"):
			return errSoft
		case strings.HasPrefix(to, "datahard"):
			return errHard
		case strings.HasPrefix(to, "datadrop"):
			ss.c.Conn().Close()
			return errSoft
		}
	}
	ss.txn.Data = b
	ss.s.mu.Lock()
	ss.s.txns = append(ss.s.txns, ss.txn)
	ss.s.mu.Unlock()
	return nil
}

// testTLS returns a server config and a client config trusting it.
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	certPEM, keyPEM, err := SelfSignedCert([]string{"127.0.0.1", "localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := newPool(t, certPEM)
	return &tls.Config{Certificates: []tls.Certificate{cert}}, &tls.Config{RootCAs: pool}
}

// stubResolver answers MX lookups from a table; a missing name is
// NXDOMAIN. It stands in for DNS, which tests cannot control.
type stubResolver map[string][]*net.MX

func (r stubResolver) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	mx, ok := r[name]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return mx, nil
}

func enqueue(t testing.TB, db *store.DB, now time.Time, id string, rcpts ...string) int64 {
	t.Helper()
	mid, err := db.Enqueue(context.Background(), &store.OutMessage{Rcpts: rcpts, Raw: queuedMessage(id), CreatedAt: now, Kind: "notice", Ref: id})
	if err != nil {
		t.Fatal(err)
	}
	return mid
}

func mustWorker(t testing.TB, db *store.DB, opts DeliveryOptions) *DeliveryWorker {
	t.Helper()
	if opts.Domain == "" {
		opts.Domain = "example.org"
	}
	if opts.Hostname == "" {
		opts.Hostname = "mail.example.org"
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	w, err := NewDeliveryWorker(storeQueue{db}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func sprintRcpts(prefix string, n int, domain string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d@%s", prefix, i, domain)
	}
	return out
}
