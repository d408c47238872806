package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cvdBin is the cvd binary, built once.
var cvdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cvd-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cvdBin = filepath.Join(dir, "cvd")
	if out, err := exec.Command("go", "build", "-o", cvdBin, "../../cmd/cvd").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build cvd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cvd runs a cvd command to completion.
func cvd(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(cvdBin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cvd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// server is a running "cvd serve".
type server struct {
	cmd   *exec.Cmd
	smtp  string
	imap  string
	mu    sync.Mutex
	log   bytes.Buffer
	done  chan struct{}
	ready chan struct{}
}

var readyRE = regexp.MustCompile(`msg="cvd ready".* smtp=(\S+)`)
var imapRE = regexp.MustCompile(` imap=(\S+)`)

func startServer(t *testing.T, cfg string, env ...string) *server {
	t.Helper()
	cmd := exec.Command(cvdBin, "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, done: make(chan struct{}), ready: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			s.mu.Unlock()
			if m := readyRE.FindStringSubmatch(line); m != nil {
				s.smtp = m[1]
				if m := imapRE.FindStringSubmatch(line); m != nil {
					s.imap = m[1]
				}
				close(s.ready)
			}
		}
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		close(s.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			s.mu.Lock()
			t.Logf("cvd log:\n%s", s.log.String())
			s.mu.Unlock()
		}
	})
	select {
	case <-s.ready:
	case <-s.done:
		t.Fatalf("cvd serve exited before it was ready")
	case <-time.After(60 * time.Second):
		t.Fatalf("cvd serve not ready after 60s")
	}
	return s
}

func (s *server) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(40 * time.Second):
		t.Fatal("cvd did not stop on SIGTERM")
	}
}

// swaks sends a message file as a user would.
func swaks(t *testing.T, server, from, to string, msg []byte) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "msg.eml")
	if err := os.WriteFile(f, msg, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("swaks", "--timeout", "20", "--server", server, "--from", from, "--to", to, "--data", "@"+f).CombinedOutput()
	if err != nil || !regexp.MustCompile(`(?m)^<[-~] +250 .*queued`).Match(out) {
		t.Fatalf("swaks to %s: %v\n%s", to, err, out)
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
	files, _ := filepath.Glob(filepath.Join(o.dir, "new", "*"))
	// Maildir names start "SECONDS.MMICROS": order by those numbers.
	key := func(f string) [2]int64 {
		var k [2]int64
		fmt.Sscanf(filepath.Base(f), "%d.M%d", &k[0], &k[1])
		return k
	}
	sort.Slice(files, func(i, j int) bool {
		a, b := key(files[i]), key(files[j])
		return a[0] < b[0] || a[0] == b[0] && a[1] < b[1]
	})
	var out []outMail
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			o.t.Fatal(err)
		}
		if m := regexp.MustCompile(`(?m)^Delivered-To: (\S+)\r?$`).FindSubmatch(b); m != nil && strings.EqualFold(string(m[1]), addr) {
			out = append(out, outMail{filepath.Base(f), b})
		}
	}
	return out
}

// wait waits until addr has at least n messages.
func (o outbox) wait(addr string, n int) []outMail {
	o.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := o.to(addr)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			o.t.Fatalf("%s has %d messages, waited for %d", addr, len(got), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
