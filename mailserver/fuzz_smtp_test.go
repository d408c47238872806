package mailserver

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/store"
)

// pipeListener hands out one end of in-memory connections.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25} }

type pipeAddrConn struct{ net.Conn }

func (pipeAddrConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 4242}
}

// FuzzSMTPSession feeds arbitrary client input to a real SMTP session over
// an in-memory connection, with the real spool behind it: the server must
// never crash, it must end every session, and it stores exactly the
// messages it answered "250 queued" to, each within the size limit.
func FuzzSMTPSession(f *testing.F) {
	for _, seed := range []string{
		"EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<security@example.org>\r\nDATA\r\nSubject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n",
		"EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<security+2026-001@example.org>\r\nDATA\r\n..dot\r\n.\r\n",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@elsewhere.net>\r\nRCPT TO:<root@example.org>\r\n",
		"EHLO x\r\nMAIL FROM:<a@b> SIZE=99999999999\r\n",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<security@example.org>\r\nDATA\r\nx\n.\nMAIL FROM:<evil@x>\r\n.\r\n",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<security@example.org>\r\nBDAT 5 LAST\r\nhello",
		"HELO x\r\nSTARTTLS\r\nAUTH PLAIN AGFhAGI=\r\nVRFY root\r\nNOOP\r\nRSET\r\n",
		"EHLO " + strings.Repeat("a", 3000) + "\r\n",
		"\x00\xff\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	db, err := store.Open(context.Background(), filepath.Join(f.TempDir(), "cvd.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	ln := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	srv := NewSMTPServer(&storeIntake{db: db}, SMTPOptions{
		Hostname: "mx.example.org", MaxMessageBytes: 4096, MaxRecipients: 5, MaxConnections: 10, MaxConnectionsPerIP: 10,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	go srv.Serve(ln)
	defer srv.Close()

	var seen int64 // the highest spool ID checked so far
	f.Fuzz(func(t *testing.T, input []byte) {
		client, server := net.Pipe()
		ln.conns <- pipeAddrConn{server}
		var replies bytes.Buffer
		done := make(chan error, 1)
		go func() {
			_, err := io.Copy(&replies, client)
			done <- err
		}()
		// The server ends every session (QUIT, or its 2 s read timeout);
		// the deadline only catches a session that never ends.
		client.SetDeadline(time.Now().Add(20 * time.Second))
		client.Write(input)
		client.Write([]byte("\r\nQUIT\r\n"))
		if err := <-done; err != nil {
			t.Fatalf("session not ended by the server: %v\nreplies:\n%s", err, replies.String())
		}
		client.Close()
		// The session is over, so everything it stored is in the spool.
		list, err := db.ListSpool(context.Background(), 1000)
		if err != nil {
			t.Fatal(err)
		}
		stored := 0
		for _, m := range list {
			if m.ID <= seen {
				continue
			}
			stored++
			if m.Size > 4096 {
				t.Errorf("stored a message of %d bytes past the 4096 limit", m.Size)
			}
		}
		if len(list) > 0 {
			seen = max(seen, list[0].ID)
		}
		// A reply line is the server's own: nothing the client sends can
		// start one.
		queued := len(regexp.MustCompile(`(?m)^250 2\.0\.0 OK: queued\r?$`).FindAllIndex(replies.Bytes(), -1))
		if stored != queued {
			t.Fatalf("%d messages stored, %d answered \"250 queued\"\ninput: %q\nreplies:\n%s", stored, queued, input, replies.String())
		}
	})
}
