// Package cvdtest drives the built cvd binary for tests outside cmd/cvd:
// it builds the binary once, runs its commands, starts "cvd serve" and
// stops it (SIGTERM) or kills it (SIGKILL), and reads the outbox Maildir.
package cvdtest

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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/dnstest"
)

// Bin is the cvd binary built by Main.
var Bin string

// Main builds cvd into a temporary folder (with -race when race is true),
// runs the tests and removes the binary. Use it from TestMain:
//
//	func TestMain(m *testing.M) { cvdtest.Main(m, cvdtest.Race) }
func Main(m *testing.M, race bool) {
	dir, err := os.MkdirTemp("", "cvd-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	Bin, err = Build(dir, race)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Build builds github.com/cvd-project/cvd/cmd/cvd into dir and returns the
// binary's path.
func Build(dir string, race bool) (string, error) {
	bin := filepath.Join(dir, "cvd")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, "github.com/cvd-project/cvd/cmd/cvd")...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build cvd: %v\n%s", err, out)
	}
	return bin, nil
}

// environ is the environment for cvd with extra added. A race-enabled cvd
// sleeps a second at every exit by default; that is turned off unless
// GORACE is set.
func environ(extra []string) []string {
	env := os.Environ()
	if os.Getenv("GORACE") == "" {
		env = append(env, "GORACE=atexit_sleep_ms=0")
	}
	return append(env, extra...)
}

// Run runs cvd to completion in dir and returns its exit code and output.
func Run(t testing.TB, dir string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(Bin, args...)
	cmd.Dir = dir
	cmd.Env = environ(env)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, o.String(), e.String()
}

// MustRun runs cvd and fails the test unless it exits 0; it returns stdout.
func MustRun(t testing.TB, dir string, env []string, args ...string) string {
	t.Helper()
	code, out, errOut := Run(t, dir, env, args...)
	if code != 0 {
		t.Fatalf("cvd %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// InitDir runs "cvd init" in a new temporary folder and points the
// configuration's SMTP, IMAP and web listeners at free loopback ports. Its
// DNS goes to an empty loopback server (never the Internet), and, as
// tests send from made-up domains, every sender is acknowledged
// (intake.acknowledge_unauthenticated = true); tests of the rule set it
// back with SetConfig. The weekly agenda mail is off (embargo.agenda_every
// = "0d"), so tests that move the clock by days count only their own mail.
func InitDir(t testing.TB, domain string, extra ...string) (dir, cfg string) {
	t.Helper()
	dir = t.TempDir()
	MustRun(t, dir, nil, append([]string{"init", "--dir", dir, "--domain", domain}, extra...)...)
	cfg = filepath.Join(dir, "cvd.toml")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte(`listen = "127.0.0.1:2525"`), []byte(`listen = "127.0.0.1:0"`), 1)
	b = bytes.Replace(b, []byte(`listen = "127.0.0.1:1143"`), []byte(`listen = "127.0.0.1:0"`), 1)
	b = bytes.Replace(b, []byte(`listen = "127.0.0.1:8080"`), []byte(`listen = "127.0.0.1:0"`), 1)
	b = bytes.Replace(b, []byte(`acknowledge_unauthenticated = false`), []byte(`acknowledge_unauthenticated = true`), 1)
	b = bytes.Replace(b, []byte(`agenda_every = "7d"`), []byte(`agenda_every = "0d"`), 1)
	b = bytes.Replace(b, []byte(`# resolver = "127.0.0.1:53"`), []byte(`resolver = "`+dnstest.Start(t).Addr+`"`), 1)
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, cfg
}

// SetConfig replaces the first line of cfg that starts with key (after
// spaces) by "key = value" — a value of the default config, e.g.
// SetConfig(t, cfg, "mode", `"smarthost"`) in [delivery].
func SetConfig(t testing.TB, cfg, key, value string) {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^(\s*#?\s*)` + regexp.QuoteMeta(key) + `\s*=.*$`)
	loc := re.FindIndex(b)
	if loc == nil {
		t.Fatalf("%s has no key %s", cfg, key)
	}
	out := append(append(append([]byte{}, b[:loc[0]]...), key+" = "+value...), b[loc[1]:]...)
	if err := os.WriteFile(cfg, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// AppendConfig appends text (TOML tables) to cfg.
func AppendConfig(t testing.TB, cfg, text string) {
	t.Helper()
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n" + text + "\n"); err != nil {
		t.Fatal(err)
	}
}

// Server is a running "cvd serve".
type Server struct {
	Cmd  *exec.Cmd
	Addr string // SMTP
	IMAP string
	// Done is closed when the process has exited.
	Done chan struct{}

	mu  sync.Mutex
	log bytes.Buffer
}

// Logs returns everything the server logged so far.
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// PID is the server's process ID.
func (s *Server) PID() int { return s.Cmd.Process.Pid }

var readyRE = regexp.MustCompile(`msg="cvd ready".* smtp=(\S+) imap=(\S+)`)

// Start starts "cvd serve ARGS" in dir with env added to the environment
// and waits for its ready line. The server is killed when the test ends.
func Start(t testing.TB, dir string, env []string, args ...string) *Server {
	t.Helper()
	cmd := exec.Command(Bin, append([]string{"serve"}, args...)...)
	cmd.Dir = dir
	cmd.Env = environ(env)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Server{Cmd: cmd, Done: make(chan struct{})}
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if m := readyRE.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1:]
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		close(s.Done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.Done
		if t.Failed() {
			t.Logf("cvd log (last 8 KB):\n%s", tail(s.Logs(), 8<<10))
		}
	})
	select {
	case m := <-ready:
		s.Addr, s.IMAP = m[0], m[1]
	case <-s.Done:
		t.Fatalf("cvd serve exited before it was ready:\n%s", s.Logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("cvd serve not ready after 60s:\n%s", s.Logs())
	}
	return s
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// Stop sends SIGTERM and waits for a clean exit (code 0, "stopped" logged).
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.Done:
	case <-time.After(40 * time.Second):
		s.Cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-s.Done:
		case <-time.After(5 * time.Second):
		}
		t.Fatal("cvd did not stop on SIGTERM")
	}
	if code := s.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("cvd exited %d after SIGTERM", code)
	}
	if !strings.Contains(s.Logs(), "msg=stopped") {
		t.Errorf("no clean stop in the log")
	}
}

// Kill kills the server with SIGKILL and waits until it is gone.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if err := s.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		select {
		case <-s.Done:
			t.Fatalf("cvd had exited before the kill: %v\n%s", s.Cmd.ProcessState, tail(s.Logs(), 4<<10))
		default:
			t.Fatal(err)
		}
	}
	<-s.Done
}

// PeakRSS is the server's peak resident set size in bytes (VmHWM), read
// from /proc while it runs.
func (s *Server) PeakRSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.PID()))
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`(?m)^VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("no VmHWM in /proc/%d/status", s.PID())
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10, nil
}

// Mail is one message in the outbox Maildir.
type Mail struct {
	File        string
	DeliveredTo string // the envelope recipient
	Token       string // the VERP token of the queue row (security+bounce-TOKEN@)
	Raw         []byte
}

var (
	deliveredToRE = regexp.MustCompile(`(?m)^Delivered-To: (\S+)\r?$`)
	returnPathRE  = regexp.MustCompile(`(?m)^Return-Path: <[^+@>]*\+bounce-([a-z2-7]+)@[^>]*>\r?$`)
)

// Outbox reads every message in outboxDir/new (cvd's outbox in the default
// delivery mode), oldest first: by the seconds and microseconds that start
// a Maildir name ("SECONDS.MMICROS..."), compared as numbers.
func Outbox(t testing.TB, outboxDir string) []Mail {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(outboxDir, "new", "*"))
	if err != nil {
		t.Fatal(err)
	}
	key := func(f string) [2]int64 {
		var k [2]int64
		fmt.Sscanf(filepath.Base(f), "%d.M%d", &k[0], &k[1])
		return k
	}
	sort.SliceStable(files, func(i, j int) bool {
		a, b := key(files[i]), key(files[j])
		return a[0] < b[0] || a[0] == b[0] && a[1] < b[1]
	})
	var out []Mail
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := Mail{File: f, Raw: b}
		if d := deliveredToRE.FindSubmatch(b); d != nil {
			m.DeliveredTo = string(d[1])
		} else {
			t.Fatalf("%s has no Delivered-To", f)
		}
		if r := returnPathRE.FindSubmatch(b); r != nil {
			m.Token = string(r[1])
		}
		out = append(out, m)
	}
	return out
}

// Listing describes the messages of an outbox, one a line (file name,
// recipient, subject), for the message of a failing test.
func Listing(mails []Mail) string {
	var b strings.Builder
	for _, m := range mails {
		fmt.Fprintf(&b, "  %s to %s: %s\n", filepath.Base(m.File), m.DeliveredTo, Header(m.Raw, "Subject"))
	}
	if b.Len() == 0 {
		return "  (empty)\n"
	}
	return b.String()
}

// InCI reports whether the tests run in CI (CI=true, as .ci/run sets).
func InCI() bool { return os.Getenv("CI") == "true" }

// SkipOrFail is for a test the environment cannot run (a program missing,
// a port busy): outside CI it skips the test, in CI it fails it, so CI
// never passes with a test that did not run.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true, and this test cannot run here: "+format, args...)
	}
	t.Skipf(format, args...)
}

// Header returns the first value of header field name in raw (unfolded),
// or "".
func Header(raw []byte, name string) string {
	head := raw
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		head = raw[:i+2]
	}
	lines := strings.Split(string(head), "\r\n")
	for i, l := range lines {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, name) {
			for j := i + 1; j < len(lines) && (strings.HasPrefix(lines[j], " ") || strings.HasPrefix(lines[j], "\t")); j++ {
				v += " " + strings.TrimSpace(lines[j])
			}
			return strings.TrimSpace(v)
		}
	}
	return ""
}
