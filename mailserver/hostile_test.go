package mailserver

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// The hostile-input corpus for the SMTP intake: each case ends with a
// clear refusal (or a harmless acceptance) and never a crash, a split
// message or a relayed one.

func (r *raw) transaction(t *testing.T, rcpt string) {
	t.Helper()
	r.send("EHLO evil.example\r\n")
	r.reply()
	r.send("MAIL FROM:<a@evil.example>\r\n")
	if got := r.reply(); !strings.HasPrefix(got, "250") {
		t.Fatalf("MAIL: %q", got)
	}
	r.send("RCPT TO:<" + rcpt + ">\r\n")
	if got := r.reply(); !strings.HasPrefix(got, "250") {
		t.Fatalf("RCPT: %q", got)
	}
	r.send("DATA\r\n")
	if got := r.reply(); !strings.HasPrefix(got, "354") {
		t.Fatalf("DATA: %q", got)
	}
}

func TestSmugglingVariants(t *testing.T) {
	for name, end := range map[string]string{
		"bare LF dot LF":   "\n.\n",
		"LF dot CRLF":      "\n.\r\n",
		"CR dot CR":        "\r.\r",
		"CRLF dot LF":      "\r\n.\n",
		"CR dot CRLF":      "\r.\r\n",
		"CRLF dot CR LF":   "\r\n.\r\r\n",
		"NUL dot":          "\r\n\x00.\r\n",
		"CRLF dot space":   "\r\n. \r\n",
		"CRLF dot dot end": "\r\n..\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, nil)
			r := dialRaw(t, ts.addr)
			r.reply()
			r.transaction(t, "security@example.org")
			r.send("Subject: first\r\n\r\nbody" + end + "MAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<security+x@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n")
			got := r.reply()
			msgs := ts.spooled(t)
			switch {
			case strings.HasPrefix(got, "250"):
				if len(msgs) != 1 || !strings.Contains(string(msgs[0].Raw), "smuggled@evil.example") {
					t.Fatalf("the smuggled transaction was split off: %d messages", len(msgs))
				}
			case len(msgs) != 0:
				t.Fatalf("refused with %q, yet %d stored", got, len(msgs))
			}
			// Nothing after the real end of data may be answered as a
			// transaction of its own.
			r.send("QUIT\r\n")
			for line := r.reply(); !strings.HasPrefix(line, "EOF"); line = r.reply() {
				if strings.HasPrefix(line, "354") {
					t.Fatalf("a smuggled DATA got %q", line)
				}
			}
			if n := len(ts.spooled(t)); n > 1 {
				t.Fatalf("%d messages stored", n)
			}
		})
	}
}

// Commands sent in the same packet as STARTTLS must not be run after the
// handshake (the plaintext-injection attack on STARTTLS, CVE-2011-0411):
// the injected EHLO, MAIL and RCPT, had they been kept, would answer
// before anything the client says over TLS and would make its bare DATA
// acceptable.
func TestPipelinedCommandsBeforeSTARTTLSAreDiscarded(t *testing.T) {
	ts := startServer(t, nil)
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	readReply := func(r *bufio.Reader) string {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return "EOF: " + err.Error()
			}
			if len(line) < 4 || line[3] != '-' {
				return strings.TrimSpace(line)
			}
		}
	}
	readReply(br)
	fmt.Fprintf(c, "EHLO evil.example\r\n")
	readReply(br)
	fmt.Fprintf(c, "STARTTLS\r\nEHLO evil.example\r\nMAIL FROM:<injected@evil.example>\r\nRCPT TO:<security@example.org>\r\n")
	if got := readReply(br); !strings.HasPrefix(got, "220") {
		t.Fatalf("STARTTLS: %q", got)
	}
	tc := tls.Client(c, &tls.Config{ServerName: "mx.example.org", RootCAs: ts.certs})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake after a pipelined STARTTLS: %v", err)
	}
	tr := bufio.NewReader(tc)
	// The first reply over TLS is to this DATA, and refuses it: no
	// transaction is open.
	fmt.Fprintf(tc, "DATA\r\n")
	if got := readReply(tr); !strings.HasPrefix(got, "502") && !strings.HasPrefix(got, "503") {
		t.Fatalf("first reply over TLS to a bare DATA: %q; want 502/503 (the injected commands were run)", got)
	}
	// The TLS session itself works: a transaction of its own goes through.
	for _, step := range []struct{ cmd, want string }{
		{"EHLO good.example", "250"},
		{"MAIL FROM:<good@example.net>", "250"},
		{"RCPT TO:<security@example.org>", "250"},
		{"DATA", "354"},
		{"Subject: over TLS\r\n\r\nhello\r\n.", "250"},
	} {
		fmt.Fprintf(tc, "%s\r\n", step.cmd)
		if got := readReply(tr); !strings.HasPrefix(got, step.want) {
			t.Fatalf("%.20q over TLS: %q, want %s", step.cmd, got, step.want)
		}
	}
	msgs := ts.spooled(t)
	if len(msgs) != 1 || msgs[0].MailFrom != "good@example.net" || !msgs[0].TLS {
		for _, m := range msgs {
			t.Logf("stored: from <%s>, TLS %v", m.MailFrom, m.TLS)
		}
		t.Fatalf("%d messages stored, want the one sent over TLS by good@example.net", len(msgs))
	}
}

func TestTenThousandRecipients(t *testing.T) {
	ts := startServer(t, nil)
	r := dialRaw(t, ts.addr)
	r.reply()
	r.send("EHLO x\r\nMAIL FROM:<a@example.net>\r\n")
	r.reply()
	r.reply()
	var b strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&b, "RCPT TO:<security+%d@example.org>\r\n", i)
	}
	go r.send(b.String())
	ok, full := 0, 0
	for range 10000 {
		got := r.reply()
		switch {
		case strings.HasPrefix(got, "250"):
			ok++
		case strings.HasPrefix(got, "452"):
			full++
		default:
			t.Fatalf("unexpected reply %q after %d", got, ok+full)
		}
	}
	if ok != 10 || full != 9990 {
		t.Errorf("%d accepted, %d refused; want 10 and 9990", ok, full)
	}
}

func TestOversizeHeaderAndCommandLines(t *testing.T) {
	ts := startServer(t, nil)
	r := dialRaw(t, ts.addr)
	r.reply()
	r.send("EHLO " + strings.Repeat("h", 5000) + "\r\n")
	if got := r.reply(); !strings.HasPrefix(got, "500") {
		t.Errorf("5000-byte EHLO: %q", got)
	}
	r2 := dialRaw(t, ts.addr)
	r2.reply()
	r2.transaction(t, "security@example.org")
	r2.send("Subject: " + strings.Repeat("s", 10000) + "\r\n\r\nbody\r\n.\r\n")
	if got := r2.reply(); !strings.HasPrefix(got, "5") {
		t.Errorf("10,000-byte header line: %q", got)
	}
	if n := len(ts.spooled(t)); n != 0 {
		t.Errorf("%d stored", n)
	}
}

func TestOpenRelayAttempts(t *testing.T) {
	ts := startServer(t, nil)
	r := dialRaw(t, ts.addr)
	r.reply()
	r.send("EHLO x\r\nMAIL FROM:<a@example.org>\r\n")
	r.reply()
	r.reply()
	for _, rcpt := range []string{
		"victim@elsewhere.net",
		"security%elsewhere.net@example.org",
		"@example.org:victim@elsewhere.net",
		"victim@elsewhere.net@example.org",
		"\"victim@elsewhere.net\"@example.org",
		"security@EXAMPLE.ORG.elsewhere.net",
		"victim@[10.0.0.1]",
	} {
		r.send("RCPT TO:<" + rcpt + ">\r\n")
		if got := r.reply(); strings.HasPrefix(got, "250") {
			t.Errorf("RCPT %s accepted: %q", rcpt, got)
		}
	}
}
