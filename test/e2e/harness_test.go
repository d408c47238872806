package e2e

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/cvdtest"
)

func TestMain(m *testing.M) { cvdtest.Main(m, cvdtest.Race) }

// cvd runs a cvd command to completion and returns its output.
func cvd(t *testing.T, env []string, args ...string) string {
	t.Helper()
	return cvdtest.MustRun(t, t.TempDir(), env, args...)
}

// startServer starts "cvd serve --config cfg" with env added.
func startServer(t *testing.T, cfg string, env ...string) *cvdtest.Server {
	t.Helper()
	return cvdtest.Start(t, t.TempDir(), env, "--config", cfg)
}

// swaks sends a message file as a user would.
func swaks(t *testing.T, server, from, to string, msg []byte) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "msg.eml")
	if err := writeFile(f, msg); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("swaks", "--timeout", "20", "--server", server, "--from", from, "--to", to, "--data", "@"+f).CombinedOutput()
	if err != nil || !regexp.MustCompile(`(?m)^<[-~] +250 .*queued`).Match(out) {
		t.Fatalf("swaks to %s: %v\n%s", to, err, out)
	}
}

// schedulerRE is the scheduler's line after a pass that did something:
// the incidents released, the downstreams reminded, the reports
// escalated.
var schedulerRE = regexp.MustCompile(`msg=scheduler .*?released="?([^" ]*)"? reminded=(\d+) escalated=(\d+)`)

// waitLog waits until the server has logged a line matching re and
// returns the first such line's submatches.
func waitLog(t *testing.T, s *cvdtest.Server, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := re.FindStringSubmatch(s.Logs()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line matching %s after 60s (the log is below)", re)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// outbox is the outbox Maildir as the recipients would find it.
type outbox struct {
	t   *testing.T
	dir string
}

type outMail struct {
	name string
	raw  []byte
}

// to returns the messages delivered to addr so far, oldest first.
func (o outbox) to(addr string) []outMail {
	o.t.Helper()
	var out []outMail
	for _, m := range cvdtest.Outbox(o.t, o.dir) {
		if strings.EqualFold(m.DeliveredTo, addr) {
			out = append(out, outMail{filepath.Base(m.File), m.Raw})
		}
	}
	return out
}

// wait waits until addr has at least n messages.
func (o outbox) wait(addr string, n int) []outMail {
	o.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := o.to(addr)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			o.t.Fatalf("%s has %d messages after 60s, waited for %d\noutbox:\n%s", addr, len(got), n, cvdtest.Listing(cvdtest.Outbox(o.t, o.dir)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
