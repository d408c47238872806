package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// TestIntakeKeepsRoomForEncryption: a report is forwarded sealed, about
// 1.4 times its size, so cvd learns the smarthost's SIZE and refuses at
// intake (552 5.3.4, at MAIL with SIZE= or after DATA) what it could not
// forward, instead of accepting it and losing it at the relay.
func TestIntakeKeepsRoomForEncryption(t *testing.T) {
	relay, addr := startRelay(t, func(srv *smtp.Server) { srv.MaxMessageBytes = 400 << 10 })
	_, cfg := initDir(t, "example.org")
	useSmarthost(t, cfg, addr, "none")
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	defer s.stop(t)
	waitFor(t, "cvd to learn the relay's SIZE", func() bool { return strings.Contains(s.Logs(), "smarthost message size limit") }, s.Logs)

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
	waitFor(t, "the acknowledgement of the small report at the relay", func() bool { return relay.got("small@reporter.example") }, s.Logs)
	if relay.got("big@reporter.example") {
		t.Error("a refused report was acknowledged")
	}
}
