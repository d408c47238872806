package mailserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/store"
)

// storeIntake accepts security@ and security+X@ at example.org into a real
// SQLite spool, as cvd does.
type storeIntake struct {
	db *store.DB
	// hold, when set, is waited on inside Accept (to catch a shutdown mid-DATA).
	hold chan struct{}
	// entered is signalled when Accept starts.
	entered chan struct{}
}

func (si *storeIntake) CheckRecipient(addr string) Recipient {
	local, domain, _ := strings.Cut(addr, "@")
	if domain != "example.org" {
		return RecipientForeign
	}
	if local == "security" || strings.HasPrefix(local, "security+") {
		return RecipientLocal
	}
	return RecipientUnknown
}

func (si *storeIntake) Accept(ctx context.Context, m *Message) (string, error) {
	if si.entered != nil {
		si.entered <- struct{}{}
	}
	if si.hold != nil {
		<-si.hold
	}
	id, err := si.db.Spool(ctx, store.Envelope{ReceivedAt: m.ReceivedAt, RemoteAddr: m.RemoteAddr, Helo: m.Helo,
		MailFrom: m.From, Rcpts: m.To, TLS: m.TLS}, m.Bytes())
	return strconv.FormatInt(id, 10), err
}

type testServer struct {
	addr   string
	srv    *SMTPServer
	db     *store.DB
	intake *storeIntake
	certs  *x509.CertPool
	done   chan error
}

func startServer(t *testing.T, tweak func(*SMTPOptions)) *testServer {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "cvd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	certPEM, keyPEM, err := SelfSignedCert([]string{"mx.example.org"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	opts := SMTPOptions{
		Hostname:            "mx.example.org",
		MaxMessageBytes:     64 << 10,
		MaxRecipients:       10,
		MaxConnections:      50,
		MaxConnectionsPerIP: 5,
		ReadTimeout:         time.Minute,
		WriteTimeout:        time.Minute,
		TLSConfig:           &tls.Config{Certificates: []tls.Certificate{cert}},
		Logger:              slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	if tweak != nil {
		tweak(&opts)
	}
	si := &storeIntake{db: db}
	srv := NewSMTPServer(si, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: ln.Addr().String(), srv: srv, db: db, intake: si, certs: pool, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ts
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func (ts *testServer) dial(t *testing.T) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	return c
}

func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func (ts *testServer) spooled(t *testing.T) []*store.SpooledMessage {
	t.Helper()
	list, err := ts.db.ListSpool(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []*store.SpooledMessage
	for i := len(list) - 1; i >= 0; i-- {
		m, err := ts.db.SpooledMessage(context.Background(), list[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

const testMessage = "From: Reporter <reporter@example.net>\r\n" +
	"To: security@example.org\r\n" +
	"Subject: heap overflow in parser\r\n" +
	"Message-ID: <1@example.net>\r\n" +
	"\r\n" +
	"Line one\r\n" +
	".A line starting with a dot\r\n" +
	"8-bit: \xc3\xa9\xe2\x82\xac and a NUL-free binary-ish \x01 byte\r\n" +
	"Trailing spaces   \r\n"

func TestAcceptedMessageIsSpooledByteForByte(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	if err := c.SendMail("reporter@Example.NET", []string{"security@example.org", "security+2026-001@EXAMPLE.ORG"}, strings.NewReader(testMessage)); err != nil {
		t.Fatalf("send: %v", err)
	}
	msgs := ts.spooled(t)
	if len(msgs) != 1 {
		t.Fatalf("%d spooled, want 1", len(msgs))
	}
	m := msgs[0]
	if !bytes.Equal(m.Raw, []byte(testMessage)) {
		t.Errorf("spooled bytes differ:\n got %q\nwant %q", m.Raw, testMessage)
	}
	if m.MailFrom != "reporter@example.net" || strings.Join(m.Rcpts, " ") != "security+2026-001@example.org security@example.org" {
		t.Errorf("envelope = %q -> %q", m.MailFrom, m.Rcpts)
	}
	if m.Helo != "client.example.net" || m.TLS || !strings.HasPrefix(m.RemoteAddr, "127.0.0.1:") {
		t.Errorf("connection facts = %+v", m.Envelope)
	}
	if time.Since(m.ReceivedAt) > time.Minute {
		t.Errorf("received at %v", m.ReceivedAt)
	}
}

func TestNullSenderAccepted(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	if err := c.SendMail("", []string{"security@example.org"}, strings.NewReader("Subject: bounce\r\n\r\nx\r\n")); err != nil {
		t.Fatalf("null sender: %v", err)
	}
	if m := ts.spooled(t); len(m) != 1 || m[0].MailFrom != "" {
		t.Errorf("spooled %+v", m)
	}
}

func TestRefusals(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	if err := c.Mail("reporter@example.net", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("no-at-sign", nil); smtpCode(err) != 501 {
		t.Errorf("RCPT without @: %v; want 501", err)
	}
	for rcpt, want := range map[string]struct {
		code int
		enh  smtp.EnhancedCode
	}{
		"root@example.org":           {550, smtp.EnhancedCode{5, 1, 1}},
		"securityteam@example.org":   {550, smtp.EnhancedCode{5, 1, 1}},
		"victim@elsewhere.net":       {550, smtp.EnhancedCode{5, 7, 1}},
		"security@example.org.evil":  {550, smtp.EnhancedCode{5, 7, 1}},
		"security@[127.0.0.1]":       {550, smtp.EnhancedCode{5, 7, 1}},
		`"a b"@example.org`:          {553, smtp.EnhancedCode{5, 1, 3}},
		"security@example.org@x.net": {550, smtp.EnhancedCode{5, 7, 1}},
	} {
		err := c.Rcpt(rcpt, nil)
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != want.code || se.EnhancedCode != want.enh {
			t.Errorf("RCPT %s: %v; want %d %v", rcpt, err, want.code, want.enh)
		}
	}
	// Nothing got in; the transaction can still go on for a good recipient.
	if err := c.Rcpt("security@example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, testMessage)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	msgs := ts.spooled(t)
	if len(msgs) != 1 || len(msgs[0].Rcpts) != 1 || msgs[0].Rcpts[0] != "security@example.org" {
		t.Errorf("spooled %+v", msgs)
	}
}

func TestOversizeRefused(t *testing.T) {
	ts := startServer(t, nil)
	big := testMessage + strings.Repeat(strings.Repeat("x", 76)+"\r\n", 1000)

	// Announced with SIZE: refused at MAIL.
	c := ts.dial(t)
	if err := c.Mail("reporter@example.net", &smtp.MailOptions{Size: int64(len(big))}); smtpCode(err) != 552 {
		t.Errorf("MAIL SIZE=%d: %v; want 552", len(big), err)
	}
	// Not announced: refused after DATA, and the connection stays usable.
	c = ts.dial(t)
	if err := c.SendMail("reporter@example.net", []string{"security@example.org"}, strings.NewReader(big)); smtpCode(err) != 552 {
		t.Errorf("oversize DATA: %v; want 552", err)
	}
	if err := c.SendMail("reporter@example.net", []string{"security@example.org"}, strings.NewReader(testMessage)); err != nil {
		t.Errorf("next message on the same connection: %v", err)
	}
	if n := len(ts.spooled(t)); n != 1 {
		t.Errorf("%d spooled, want only the small one", n)
	}
}

func TestTooManyRecipients(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t)
	if err := c.Mail("reporter@example.net", nil); err != nil {
		t.Fatal(err)
	}
	var last error
	for i := range 11 {
		last = c.Rcpt(fmt.Sprintf("security+%d@example.org", i), nil)
	}
	if smtpCode(last) != 452 {
		t.Errorf("11th recipient: %v; want 452", last)
	}
}

func TestStartTLS(t *testing.T) {
	ts := startServer(t, nil)
	c, err := smtp.DialStartTLS(ts.addr, &tls.Config{ServerName: "mx.example.org", RootCAs: ts.certs})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	if err := c.SendMail("reporter@example.net", []string{"security@example.org"}, strings.NewReader(testMessage)); err != nil {
		t.Fatal(err)
	}
	state, ok := c.TLSConnectionState()
	if !ok || !state.HandshakeComplete || state.Version < tls.VersionTLS12 {
		t.Fatalf("TLS state %+v %v", state, ok)
	}
	msgs := ts.spooled(t)
	if len(msgs) != 1 || !msgs[0].TLS || !bytes.Equal(msgs[0].Raw, []byte(testMessage)) {
		t.Errorf("spooled over TLS: %+v", msgs)
	}
}

// raw is a line-level SMTP client for what go-smtp's client will not send.
type raw struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &raw{t: t, c: c, r: bufio.NewReader(c)}
}

// reply reads one (possibly multi-line) reply and returns its last line.
func (r *raw) reply() string {
	r.t.Helper()
	for {
		line, err := r.r.ReadString('\n')
		if err != nil {
			return "EOF: " + err.Error()
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n")
		}
	}
}

func (r *raw) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

func TestConnectionLimitPerIP(t *testing.T) {
	ts := startServer(t, func(o *SMTPOptions) { o.MaxConnectionsPerIP = 2 })
	a, b := dialRaw(t, ts.addr), dialRaw(t, ts.addr)
	for _, r := range []*raw{a, b} {
		if got := r.reply(); !strings.HasPrefix(got, "220 ") {
			t.Fatalf("greeting %q", got)
		}
	}
	third := dialRaw(t, ts.addr)
	if got := third.reply(); !strings.HasPrefix(got, "421 4.7.0") {
		t.Errorf("third connection from the same IP got %q; want 421", got)
	}
	// Closing one frees a slot.
	a.send("QUIT\r\n")
	a.reply()
	a.c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := dialRaw(t, ts.addr)
		got := r.reply()
		if strings.HasPrefix(got, "220 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed: %q", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSmugglingIsNotAnEndOfData(t *testing.T) {
	ts := startServer(t, nil)
	r := dialRaw(t, ts.addr)
	r.reply()
	r.send("EHLO x\r\n")
	r.reply()
	r.send("MAIL FROM:<a@example.net>\r\n")
	r.reply()
	r.send("RCPT TO:<security@example.org>\r\n")
	r.reply()
	r.send("DATA\r\n")
	if got := r.reply(); !strings.HasPrefix(got, "354") {
		t.Fatalf("DATA: %q", got)
	}
	// A bare-LF "end of data" followed by a smuggled transaction.
	r.send("Subject: a\r\n\r\nbody\n.\nMAIL FROM:<evil@example.net>\r\nRCPT TO:<security@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n")
	got := r.reply()
	if strings.HasPrefix(got, "250") {
		// If accepted, it must be one message, with the smuggled text inside.
		msgs := ts.spooled(t)
		if len(msgs) != 1 || !bytes.Contains(msgs[0].Raw, []byte("MAIL FROM:<evil")) {
			t.Errorf("smuggled transaction split the message: %d spooled", len(msgs))
		}
		return
	}
	if n := len(ts.spooled(t)); n != 0 {
		t.Errorf("refused (%q) but %d spooled", got, n)
	}
}

func TestShutdownFinishesTransferAndAnswersIdleWith421(t *testing.T) {
	ts := startServer(t, nil)
	ts.intake.hold = make(chan struct{})
	ts.intake.entered = make(chan struct{}, 1)

	idle := dialRaw(t, ts.addr)
	idle.reply()
	idle.send("EHLO idle\r\n")
	idle.reply()
	idle.send("MAIL FROM:<a@example.net>\r\n")
	idle.reply()

	busy := dialRaw(t, ts.addr)
	busy.reply()
	busy.send("EHLO busy\r\nMAIL FROM:<b@example.net>\r\nRCPT TO:<security@example.org>\r\nDATA\r\n")
	for range 4 {
		busy.reply()
	}
	busy.send(strings.ReplaceAll(testMessage, "\r\n.", "\r\n..") + ".\r\n")
	<-ts.intake.entered // the message is being stored

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- ts.srv.Shutdown(ctx)
	}()

	if got := idle.reply(); !strings.HasPrefix(got, "421") {
		t.Errorf("idle connection during shutdown got %q; want 421", got)
	}
	if _, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		// The listener may still be closing; a connection must not get a greeting.
		r := dialRaw(t, ts.addr)
		if got := r.reply(); strings.HasPrefix(got, "220") {
			t.Errorf("new connection greeted during shutdown")
		}
	}
	close(ts.intake.hold)
	if got := busy.reply(); !strings.HasPrefix(got, "250") {
		t.Errorf("message in transfer during shutdown got %q; want 250", got)
	}
	busy.send("MAIL FROM:<c@example.net>\r\n")
	if got := busy.reply(); !strings.HasPrefix(got, "421") && !strings.HasPrefix(got, "EOF") {
		t.Errorf("new transaction after shutdown got %q; want 421", got)
	}
	if err := <-shut; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	msgs := ts.spooled(t)
	if len(msgs) != 1 || !bytes.Equal(msgs[0].Raw, []byte(testMessage)) {
		t.Errorf("after shutdown: %d spooled", len(msgs))
	}
}

func TestConcurrentClients(t *testing.T) {
	ts := startServer(t, func(o *SMTPOptions) { o.MaxConnectionsPerIP = 20 })
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.Dial(ts.addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := range 10 {
				msg := fmt.Sprintf("Message-ID: <%d.%d@example.net>\r\n\r\nbody\r\n", i, j)
				if err := c.SendMail("r@example.net", []string{"security@example.org"}, strings.NewReader(msg)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(ts.spooled(t)); n != 100 {
		t.Errorf("%d spooled, want 100", n)
	}
}

func TestOverlongLineClosesTransaction(t *testing.T) {
	ts := startServer(t, nil)
	r := dialRaw(t, ts.addr)
	r.reply()
	r.send("EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<security@example.org>\r\nDATA\r\n")
	for range 4 {
		r.reply()
	}
	// A line past the limit, then text that must never be read as commands.
	r.send("Subject: a\r\n\r\n" + strings.Repeat("y", 3000) + "\r\nRSET\r\nMAIL FROM:<evil@example.net>\r\nRCPT TO:<security@example.org>\r\nDATA\r\nx\r\n.\r\n")
	got := r.reply()
	if !strings.HasPrefix(got, "5") {
		t.Errorf("overlong line: %q; want a 5xx refusal", got)
	}
	for {
		line := r.reply()
		if strings.HasPrefix(line, "EOF") {
			break
		}
		if !strings.HasPrefix(line, "421") && !strings.HasPrefix(line, "500") {
			t.Errorf("after the refusal the server answered %q; want only a closing 421/500", line)
		}
	}
	if n := len(ts.spooled(t)); n != 0 {
		t.Errorf("%d spooled", n)
	}
}

// A shutdown right at start, before Serve has registered its listener,
// must still stop it.
func TestShutdownRacingServe(t *testing.T) {
	for range 50 {
		srv := NewSMTPServer(&storeIntake{}, SMTPOptions{Hostname: "mx.example.org", MaxConnections: 1, MaxConnectionsPerIP: 1,
			ReadTimeout: time.Minute, WriteTimeout: time.Minute, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ln) }()
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Serve did not return after Shutdown")
		}
	}
}
