package main

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestIntakeKeepsRoomForEncryption: a report is forwarded sealed, about
// 1.4 times its size, so cvd learns the smarthost's SIZE and refuses at
// intake (552 5.3.4, at MAIL with SIZE= or after DATA) what it could not
// forward, instead of accepting it and losing it at the relay.
func TestIntakeKeepsRoomForEncryption(t *testing.T) {
	relay := &recordingRelay{}
	srv := smtp.NewServer(relay)
	srv.Domain = "relay.example"
	srv.MaxMessageBytes = 400 << 10
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	_, cfg := initDir(t, "example.org")
	b, _ := os.ReadFile(cfg)
	b = []byte(strings.Replace(string(b), `mode = "outbox"`, `mode = "smarthost"`+"\nsmarthost = \""+ln.Addr().String()+"\"", 1))
	os.WriteFile(cfg, []byte(strings.Replace(string(b), `tls = "starttls"`, `tls = "none"`, 1)), 0o600)
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	defer s.stop(t)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(s.Logs(), "smarthost message size limit") {
		if time.Now().After(deadline) {
			t.Fatalf("cvd did not learn the relay's SIZE\n%s", s.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}

	send := func(from string, size int, announce bool) error {
		t.Helper()
		c, err := smtp.Dial(s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := "From: <" + from + ">\r\nSubject: big report\r\n\r\n" + strings.Repeat(strings.Repeat("x", 76)+"\r\n", size/78)
		var opts *smtp.MailOptions
		if announce {
			opts = &smtp.MailOptions{Size: int64(len(msg))}
		}
		if err := c.Mail(from, opts); err != nil {
			return err
		}
		if err := c.Rcpt("security@example.org", nil); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		w.Write([]byte(msg))
		return w.Close()
	}
	tooBig := func(err error) bool {
		var se *smtp.SMTPError
		return errors.As(err, &se) && se.Code == 552 && se.EnhancedCode == smtp.EnhancedCode{5, 3, 4}
	}
	// 350 KiB fits cvd's own limit (25 MiB) and the relay's, but not the
	// relay's once sealed.
	if err := send("big@reporter.example", 350<<10, true); !tooBig(err) {
		t.Errorf("MAIL with SIZE=350KiB: %v, want 552 5.3.4", err)
	}
	if err := send("big@reporter.example", 350<<10, false); !tooBig(err) {
		t.Errorf("DATA of 350KiB: %v, want 552 5.3.4", err)
	}
	if err := send("small@reporter.example", 100<<10, true); err != nil {
		t.Fatalf("a report of 100 KiB: %v", err)
	}
	deadline = time.Now().Add(time.Minute)
	for !relay.got("small@reporter.example") {
		if time.Now().After(deadline) {
			t.Fatalf("the acknowledgement of the small report did not reach the relay\n%s", s.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if relay.got("big@reporter.example") {
		t.Error("a refused report was acknowledged")
	}
}
