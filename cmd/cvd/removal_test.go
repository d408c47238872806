package main

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/internal/gpgtest"
)

// holdingRelay is a smarthost that answers 451 to the addresses in defer
// and accepts the rest, keeping what it accepted by recipient.
type holdingRelay struct {
	mu       sync.Mutex
	deferred map[string]bool
	got      map[string][][]byte
}

func (r *holdingRelay) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &holdingSession{r: r}, nil
}

func (r *holdingRelay) setDeferred(addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deferred = map[string]bool{}
	for _, a := range addrs {
		r.deferred[a] = true
	}
}

func (r *holdingRelay) mail(rcpt string) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[rcpt]
}

type holdingSession struct {
	r     *holdingRelay
	rcpts []string
}

func (s *holdingSession) Reset()                               { s.rcpts = nil }
func (s *holdingSession) Logout() error                        { return nil }
func (s *holdingSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *holdingSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if s.r.deferred[to] {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "greylisted, try again later"}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *holdingSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	for _, to := range s.rcpts {
		s.r.got[to] = append(s.r.got[to], b)
	}
	return nil
}

// TestRemovedMemberGetsNoQueuedCopy: a copy deferred by the member's
// server before their removal was delivered after it. Removing a member
// (x-remove-member by mail, or cvd member remove) drops their queued
// copies: the coordinator is told in the command's reply, cvd queue list
// shows the rows failed with the reason, they cannot be retried, and once
// the relay accepts again (hours later) the removed members get nothing.
// A member whose key is replaced gets the copy sealed to the new key.
func TestRemovedMemberGetsNoQueuedCopy(t *testing.T) {
	relay := &holdingRelay{got: map[string][][]byte{}}
	srv := smtp.NewServer(relay)
	srv.Domain = "relay.example"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	dir, cfg := initDir(t, "example.org")
	b, _ := os.ReadFile(cfg)
	b = []byte(strings.Replace(string(b), `mode = "outbox"`, `mode = "smarthost"`+"\nsmarthost = \""+ln.Addr().String()+"\"", 1))
	b = []byte(strings.Replace(string(b), `tls = "starttls"`, `tls = "none"`, 1))
	os.WriteFile(cfg, b, 0o600)
	project := filepath.Join(dir, "keys/project.pub.asc")
	projectPub, _ := os.ReadFile(project)
	projectFpr := regexp.MustCompile(`[0-9A-F]{40}`).FindString(gpgFingerprints(t, project))

	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	deb := gpgtest.New(t, "Debian Security", "security@debian.example", "never")
	olga := gpgtest.New(t, "Olga Observer", "olga@observer.example", "never")
	fred := gpgtest.New(t, "Fred Fixer", "fred@fixer.example", "never")
	fredNew := gpgtest.New(t, "Fred Fixer", "fred@fixer.example", "never")
	cora.Import(projectPub)
	fred.Import(projectPub)
	fredNew.Import(projectPub)
	if code, out, errOut := runCVD(t, dir, nil, "list", "create", "bug1", "--config", cfg); code != 0 {
		t.Fatalf("list create: %d %s%s", code, out, errOut)
	}
	for _, m := range []struct {
		u    *gpgtest.User
		role string
	}{{cora, "coordinator"}, {deb, "downstream"}, {olga, "observer"}, {fred, "fixer"}} {
		keyFile := filepath.Join(t.TempDir(), "key.asc")
		os.WriteFile(keyFile, m.u.Pub, 0o600)
		if code, out, errOut := runCVD(t, dir, nil, "member", "add", "bug1", m.u.Email, "--role", m.role, "--key", keyFile, "--config", cfg); code != 0 {
			t.Fatalf("member add %s: %d %s%s", m.u.Email, code, out, errOut)
		}
	}
	relay.setDeferred(deb.Email, olga.Email, fred.Email)
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)

	post := func(id, body string) {
		t.Helper()
		armored := cora.EncryptSign([]byte("Content-Type: text/plain; charset=utf-8\r\n\r\n"+body+"\r\n"), projectFpr)
		raw := gpgtest.PGPMIME("From: Cora Coordinator <cora@example.org>\r\nTo: security+bug1@example.org\r\nSubject: ...\r\nMessage-ID: <"+id+"@example.org>\r\nDate: "+
			time.Now().Format(time.RFC1123Z)+"\r\n", armored)
		c, err := smtp.Dial(s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.SendMail(cora.Email, []string{"security+bug1@example.org"}, strings.NewReader(raw)); err != nil {
			t.Fatal(err)
		}
	}
	queue := func() string {
		_, out, _ := runCVD(t, dir, nil, "queue", "list", "--all", "--config", cfg)
		return out
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; queue:\n%s", what, queue())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	deferredRow := func(email string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^(\d+) +` + regexp.QuoteMeta(email) + ` +deferred `)
	}

	post("p1", "EMBARGOED-DETAILS of the overflow")
	waitFor("both copies deferred", func() bool {
		q := queue()
		return deferredRow(deb.Email).MatchString(q) && deferredRow(olga.Email).MatchString(q) && deferredRow(fred.Email).MatchString(q)
	})
	q := queue()
	debRow, olgaRow := deferredRow(deb.Email).FindStringSubmatch(q)[1], deferredRow(olga.Email).FindStringSubmatch(q)[1]

	// Cora removes Debian by signed mail, and the operator removes Olga.
	post("p2", "x-list: bug1\r\nx-remove-member: "+deb.Email)
	var reply string
	waitFor("the command's reply", func() bool {
		for _, p := range readable(cora, relay.mail(cora.Email)) {
			if strings.Contains(p, "x-remove-member:") {
				reply = p
				return true
			}
		}
		return false
	})
	if !strings.Contains(reply, "ok, removed "+deb.Email+"; 1 queued copy not yet delivered dropped") {
		t.Errorf("the reply does not say what was dropped:\n%s", reply)
	}
	code, out, errOut := runCVD(t, dir, nil, "member", "remove", "bug1", olga.Email, "--config", cfg)
	if code != 0 || !strings.Contains(out, "1 queued copy not yet delivered dropped") {
		t.Errorf("member remove: exit %d\n%s%s", code, out, errOut)
	}
	q = queue()
	for _, row := range []string{debRow, olgaRow} {
		if !regexp.MustCompile(`(?m)^` + row + ` +\S+ +failed .*dropped: member removed by`).MatchString(q) {
			t.Errorf("row %s is not failed with the reason:\n%s", row, q)
		}
		if code, _, errOut := runCVD(t, dir, nil, "queue", "retry", row, "--config", cfg); code == 0 || !strings.Contains(errOut, "cannot be retried") {
			t.Errorf("a dropped row was retried: exit %d %s", code, errOut)
		}
	}

	// Fred's key changes: his queued copy is sealed again to the new key.
	keyFile := filepath.Join(t.TempDir(), "key.asc")
	os.WriteFile(keyFile, fredNew.Pub, 0o600)
	code, out, errOut = runCVD(t, dir, nil, "member", "key", fred.Email, "--key", keyFile, "--replace-key", "--config", cfg)
	if code != 0 || !strings.Contains(out, "bug1: 1 queued copy sealed again to the new key") {
		t.Errorf("member key --replace-key: exit %d\n%s%s", code, out, errOut)
	}
	if q := queue(); !regexp.MustCompile(`(?m)^\d+ +fred@fixer\.example +failed .*dropped: key changed`).MatchString(q) {
		t.Errorf("the copy sealed to Fred's old key is not dropped:\n%s", q)
	}

	// Hours later, the relay accepts everyone.
	s.stop(t)
	relay.setDeferred()
	s = startCVD(t, t.TempDir(), []string{"CVD_CLOCK_OFFSET=6h"}, "--config", cfg)
	c, err := smtp.Dial(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("rita@reporter.example", []string{"security@example.org"}, strings.NewReader("From: Rita <rita@reporter.example>\r\nSubject: another bug\r\n\r\ndetails\r\n")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFor("the acknowledgement to a later report", func() bool { return len(relay.mail("rita@reporter.example")) > 0 })
	time.Sleep(time.Second)
	for _, u := range []*gpgtest.User{deb, olga} {
		if n := len(relay.mail(u.Email)); n != 0 {
			t.Errorf("%s got %d messages after their removal", u.Email, n)
		}
	}
	if got := relay.mail(fred.Email); len(got) != 1 {
		t.Errorf("Fred got %d copies, want 1", len(got))
	} else if plain, _, err := fredNew.Decrypt(got[0]); err != nil || !strings.Contains(plain, "EMBARGOED-DETAILS") {
		t.Errorf("Fred cannot read his copy with his new key: %v\n%s", err, plain)
	} else if _, _, err := fred.Decrypt(got[0]); err == nil {
		t.Errorf("Fred's copy is still sealed to his old key")
	}
	if t.Failed() {
		t.Log(queue())
	}
	s.stop(t)
}
