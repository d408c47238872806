package main

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// startRelay runs a recording SMTP relay on a loopback port, set up by
// configure (TLS, SMTPUTF8, SIZE) before it serves.
func startRelay(t *testing.T, configure func(*smtp.Server)) (*recordingRelay, string) {
	t.Helper()
	relay := &recordingRelay{}
	srv := smtp.NewServer(relay)
	srv.Domain = "relay.example"
	if configure != nil {
		configure(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return relay, ln.Addr().String()
}

// useSmarthost points the configuration cfg written by cvd init at the
// relay addr, with the smarthost TLS mode tlsMode.
func useSmarthost(t *testing.T, cfg, addr, tlsMode string) {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), `mode = "outbox"`, `mode = "smarthost"`+"\nsmarthost = \""+addr+"\"", 1)
	s = strings.Replace(s, `tls = "starttls"`, `tls = "`+tlsMode+`"`, 1)
	if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// addTeam makes u a team coordinator in cfg (key in dir/keys), with the
// project key in u's keyring.
func addTeam(t *testing.T, dir, cfg string, u *gpgtest.User) {
	t.Helper()
	project, err := os.ReadFile(filepath.Join(dir, "keys", "project.pub.asc"))
	if err != nil {
		t.Fatal(err)
	}
	u.Import(project)
	name := strings.SplitN(u.Email, "@", 2)[0]
	if err := os.WriteFile(filepath.Join(dir, "keys", name+".asc"), u.Pub, 0o600); err != nil {
		t.Fatal(err)
	}
	cvdtest.AppendConfig(t, cfg, "\n[[embargo.team]]\nname = \""+u.Name+"\"\nemail = \""+u.Email+"\"\nkey_file = \"keys/"+name+".asc\"\n")
}

// waitOutboxTo waits for the first message to rcpt in dir's outbox.
func waitOutboxTo(t *testing.T, dir, rcpt string, diag func() string) cvdtest.Mail {
	t.Helper()
	var got cvdtest.Mail
	waitFor(t, "a message to "+rcpt+" in the outbox", func() bool {
		for _, m := range cvdtest.Outbox(t, filepath.Join(dir, "outbox")) {
			if m.DeliveredTo == rcpt {
				got = m
				return true
			}
		}
		return false
	}, diag)
	return got
}

// waitFor polls cond for up to a minute; on time-out it fails with what
// it waited for and diag's output (the server log, the queue).
func waitFor(t *testing.T, what string, cond func() bool, diag func() string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s\n%s", what, diag())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recordingRelay is an SMTP relay that keeps the recipients it accepted,
// and whether each came in a SMTPUTF8 transaction.
type recordingRelay struct {
	mu    sync.Mutex
	rcpts []string
	utf8  map[string]bool
}

func (r *recordingRelay) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &relaySession{r: r}, nil
}

func (r *recordingRelay) got(rcpt string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.rcpts {
		if x == rcpt {
			return true
		}
	}
	return false
}

type relaySession struct {
	r     *recordingRelay
	rcpts []string
	utf8  bool
}

func (s *relaySession) Reset()        { s.rcpts, s.utf8 = nil, false }
func (s *relaySession) Logout() error { return nil }
func (s *relaySession) Mail(_ string, o *smtp.MailOptions) error {
	s.utf8 = o != nil && o.UTF8
	return nil
}
func (s *relaySession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *relaySession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.r.mu.Lock()
	s.r.rcpts = append(s.r.rcpts, s.rcpts...)
	if s.r.utf8 == nil {
		s.r.utf8 = map[string]bool{}
	}
	for _, r := range s.rcpts {
		s.r.utf8[r] = s.utf8
	}
	s.r.mu.Unlock()
	return nil
}
