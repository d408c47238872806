package main

import (
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// tempfailBackend is a relay that defers every recipient.
type tempfailBackend struct{}

func (tempfailBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return tempfailSession{}, nil }

type tempfailSession struct{}

func (tempfailSession) Reset()                               {}
func (tempfailSession) Logout() error                        { return nil }
func (tempfailSession) Mail(string, *smtp.MailOptions) error { return nil }
func (tempfailSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }
func (tempfailSession) Rcpt(string, *smtp.RcptOptions) error {
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "greylisted, try again later"}
}

// TestQueueCommandsShowDeferredMail: a relay that answers 451 leaves the
// acknowledgement deferred; the operator sees it with its last reply,
// makes it due again, and drops it.
func TestQueueCommandsShowDeferredMail(t *testing.T) {
	relay := smtp.NewServer(tempfailBackend{})
	relay.Domain = "relay.example"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go relay.Serve(ln)
	defer relay.Close()

	dir, cfg := initDir(t, "example.org")
	b, _ := os.ReadFile(cfg)
	b = []byte(strings.Replace(string(b), `mode = "outbox"`, `mode = "smarthost"`+"\nsmarthost = \""+ln.Addr().String()+"\"", 1))
	b = []byte(strings.Replace(string(b), `tls = "starttls"`, `tls = "none"`, 1))
	os.WriteFile(cfg, b, 0o600)

	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	c, err := smtp.Dial(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("rita@reporter.example", []string{"security@example.org"}, strings.NewReader("From: Rita <rita@reporter.example>\r\nSubject: bug\r\n\r\ndetails\r\n")); err != nil {
		t.Fatal(err)
	}
	c.Close()

	var out string
	row := regexp.MustCompile(`(?m)^(\d+) +rita@reporter\.example +deferred +1 +\S+.*451.*greylisted`)
	deadline := time.Now().Add(30 * time.Second)
	for !row.MatchString(out) {
		if time.Now().After(deadline) {
			t.Fatalf("no deferred acknowledgement with its reply in cvd queue list:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
		_, out, _ = runCVD(t, dir, nil, "queue", "list", "--config", cfg)
	}
	id := row.FindStringSubmatch(out)[1]
	// The row as the operator reads it: state, attempts, next try.
	rowState := func() (state string, attempts int, next time.Time) {
		t.Helper()
		_, out, _ := runCVD(t, dir, nil, "queue", "list", "--config", cfg, "--all")
		m := regexp.MustCompile(`(?m)^` + id + ` +\S+ +(\S+) +(\d+) +(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d|-) `).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("row %s not in cvd queue list:\n%s", id, out)
		}
		attempts, _ = strconv.Atoi(m[2])
		if m[3] != "-" {
			next, _ = time.ParseInLocation(time.DateTime, m[3], time.Local)
		}
		return m[1], attempts, next
	}
	_, attemptsBefore, _ := rowState()
	if code, out, errOut := runCVD(t, dir, nil, "queue", "retry", id, "--config", cfg); code != 0 || !strings.Contains(out, "is due now") {
		t.Errorf("queue retry: %d %s%s", code, out, errOut)
	}
	// Due now: queued for now, or already picked up again by the worker
	// (the first backoff, a minute, has not passed).
	if state, attempts, next := rowState(); !(state == "queued" && !next.After(time.Now().Add(time.Second)) || state == "sending" || attempts > attemptsBefore) {
		t.Errorf("after queue retry the row is %s, %d attempts, next try %v; want it due now", state, attempts, next)
	}
	if code, out, errOut := runCVD(t, dir, nil, "queue", "drop", id, "--config", cfg); code != 0 {
		t.Errorf("queue drop: %d %s%s", code, out, errOut)
	}
	_, out, _ = runCVD(t, dir, nil, "queue", "list", "--config", cfg, "--all")
	if regexp.MustCompile(`(?m)^` + id + ` `).MatchString(out) {
		t.Errorf("dropped row still listed:\n%s", out)
	}
	if code, _, errOut := runCVD(t, dir, nil, "queue", "drop", "999999", "--config", cfg); code == 0 || errOut == "" {
		t.Errorf("dropping an unknown row: exit %d %q", code, errOut)
	}
	s.stop(t)
}
