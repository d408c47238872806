package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/store"
)

func TestMain(m *testing.M) { cvdtest.Main(m, raceEnabled) }

// runCVD runs cvd to completion and returns its exit code and output.
func runCVD(t *testing.T, dir string, env []string, args ...string) (int, string, string) {
	t.Helper()
	return cvdtest.Run(t, dir, env, args...)
}

// server is a running "cvd serve".
type server struct {
	*cvdtest.Server
	addr string
}

func (s *server) logs() string { return s.Logs() }

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.Stop(t)
}

// startCVD starts "cvd serve" and waits for its ready line.
func startCVD(t *testing.T, dir string, env []string, args ...string) *server {
	t.Helper()
	s := cvdtest.Start(t, dir, env, args...)
	return &server{Server: s, addr: s.Addr}
}

// initDir runs "cvd init" and points the listeners at free loopback ports.
func initDir(t *testing.T, domain string, extra ...string) (dir, cfg string) {
	t.Helper()
	return cvdtest.InitDir(t, domain, extra...)
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"serve", "--no-such-flag"},
		{"serve", "extra-arg"},
		{"serve", "--log-format", "xml"},
		{"init", "--dir", t.TempDir()},
		{"init", "--dir", t.TempDir(), "--domain", "example.org", "--key-type", "dsa1024"},
		{"init", "--dir", t.TempDir(), "--domain", "not a domain"},
		{"spool"},
	} {
		code, out, errOut := runCVD(t, t.TempDir(), nil, args...)
		if code != 2 || !strings.Contains(errOut, "Usage:") || out != "" {
			t.Errorf("cvd %q: exit %d, stdout %q, stderr %q; want exit 2 and usage on stderr", args, code, out, errOut)
		}
	}
	code, out, _ := runCVD(t, t.TempDir(), nil, "help")
	if code != 0 || !strings.Contains(out, "cvd serve") {
		t.Errorf("cvd help: exit %d, %q", code, out)
	}
	code, out, _ = runCVD(t, t.TempDir(), nil, "version")
	if code != 0 || !regexp.MustCompile(`^cvd \S+ \(schema \d+, go1\.`).MatchString(out) {
		t.Errorf("cvd version: exit %d, %q", code, out)
	}
}

// gpgShowKey lists a public key file with GnuPG: what an operator checks.
func gpgShowKey(t *testing.T, file string) string {
	t.Helper()
	home, err := os.MkdirTemp("", "g")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(home)
	out, err := exec.Command("gpg", "--homedir", home, "--batch", "--with-colons", "--show-keys", file).CombinedOutput()
	if err != nil {
		t.Fatalf("gpg --show-keys %s: %v\n%s", file, err, out)
	}
	return string(out)
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %o, want %o", path, got, want)
	}
}

func TestInitThenServe(t *testing.T) {
	dir, cfg := initDir(t, "Example.org")
	for _, f := range []string{"cvd.toml", "keys/project.asc", "tls/key.pem"} {
		checkMode(t, filepath.Join(dir, f), 0o600)
	}
	keys := gpgShowKey(t, filepath.Join(dir, "keys/project.pub.asc"))
	// pub: algorithm 22 (EdDSA) with a cv25519 (18) encryption subkey.
	if !regexp.MustCompile(`(?m)^pub:[^:]*:\d+:22:`).MatchString(keys) || !regexp.MustCompile(`(?m)^sub:[^:]*:\d+:18:`).MatchString(keys) {
		t.Errorf("project key is not Curve25519:\n%s", keys)
	}
	if !strings.Contains(keys, "<security@example.org>") {
		t.Errorf("project key has no security@example.org user ID:\n%s", keys)
	}
	priv, _ := os.ReadFile(filepath.Join(dir, "keys/project.asc"))
	if !bytes.Contains(priv, []byte("BEGIN PGP PRIVATE KEY BLOCK")) {
		t.Error("keys/project.asc holds no private key")
	}

	// A second init keeps what exists.
	code, _, errOut := runCVD(t, dir, nil, "init", "--dir", dir, "--domain", "example.org")
	if code != 1 || !strings.Contains(errOut, "--force") {
		t.Errorf("second init: exit %d, %q", code, errOut)
	}

	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	c, err := smtp.Dial(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := "From: r@example.net\r\nSubject: report\r\n\r\nhello\r\n"
	if err := c.SendMail("r@example.net", []string{"security@example.org"}, strings.NewReader(msg)); err != nil {
		t.Fatalf("send to security@example.org: %v", err)
	}
	if err := c.SendMail("r@example.net", []string{"security@localhost"}, strings.NewReader(msg)); err == nil {
		t.Error("mail for another domain accepted")
	}
	c.Quit()

	code, out, errOut := runCVD(t, dir, nil, "spool", "list", "--config", cfg)
	if code != 0 || !regexp.MustCompile(`(?m)^1 .*r@example\.net +security@example\.org +\d+ +(new|done)$`).MatchString(out) {
		t.Errorf("cvd spool list: exit %d\n%s%s", code, out, errOut)
	}
	s.stop(t)
}

func TestInitRSA4096(t *testing.T) {
	if testing.Short() {
		t.Skip("RSA-4096 generation is slow")
	}
	dir, _ := initDir(t, "example.org", "--key-type", "rsa4096")
	keys := gpgShowKey(t, filepath.Join(dir, "keys/project.pub.asc"))
	if !regexp.MustCompile(`(?m)^pub:[^:]*:4096:1:`).MatchString(keys) {
		t.Errorf("project key is not RSA-4096:\n%s", keys)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	b, _ := os.ReadFile(cfg)
	bad := bytes.Replace(b, []byte("max_recipients"), []byte("max_recipents"), 1)
	os.WriteFile(cfg, bad, 0o600)
	code, _, errOut := runCVD(t, dir, nil, "serve", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, cfg) || !strings.Contains(errOut, "smtp.max_recipents") || !strings.Contains(errOut, `did you mean "smtp.max_recipients"`) {
		t.Errorf("typo'd key: exit %d, %q", code, errOut)
	}

	// Missing key file: named, with the fix.
	os.WriteFile(cfg, b, 0o600)
	os.Remove(filepath.Join(dir, "keys/project.asc"))
	code, _, errOut = runCVD(t, dir, nil, "serve", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "project.asc is missing") || !strings.Contains(errOut, "cvd init") {
		t.Errorf("missing key: exit %d, %q", code, errOut)
	}
}

func TestConfigDiscovery(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	// $CVD_CONFIG.
	s := startCVD(t, t.TempDir(), []string{"CVD_CONFIG=" + cfg})
	if !strings.Contains(s.logs(), "config="+cfg) {
		t.Errorf("CVD_CONFIG not used:\n%s", s.logs())
	}
	s.stop(t)
	// ./cvd.toml in the working directory.
	s = startCVD(t, dir, []string{"CVD_CONFIG="})
	if !strings.Contains(s.logs(), "config="+cfg) || !strings.Contains(s.logs(), "domain=example.org") {
		t.Errorf("./cvd.toml not used:\n%s", s.logs())
	}
	s.stop(t)
}

func TestJSONLogs(t *testing.T) {
	_, cfg := initDir(t, "example.org")
	cmd := exec.Command(cvdtest.Bin, "serve", "--config", cfg, "--log-format", "json")
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line, `{"time":`) || !strings.Contains(line, `"msg":"cvd ready"`) {
		t.Errorf("first log line %q is not the JSON ready line", line)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	go io.Copy(io.Discard, pr)
	cmd.Wait()
}

// swaks runs swaks as a user would and returns its transcript.
func swaks(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("swaks"); err != nil {
		t.Fatal("swaks is not installed (the test script installs it: apt-get install -y swaks)")
	}
	out, err := exec.Command("swaks", append([]string{"--timeout", "20"}, args...)...).CombinedOutput()
	return string(out), err
}

func TestSwaksAgainstEmbeddedDefault(t *testing.T) {
	// The README's first command, as a new user runs it: no configuration.
	// The embedded default listens on fixed ports; another program (or
	// another checkout's tests) may hold them for a while. Checkouts on one
	// machine take turns through a lock file.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "cvd-test-default-ports.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() }) // after the server's own cleanup
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	busy := func() error {
		for _, addr := range []string{"127.0.0.1:2525", "127.0.0.1:8080"} {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			ln.Close()
		}
		return nil
	}
	for deadline := time.Now().Add(2 * time.Minute); busy() != nil; time.Sleep(time.Second) {
		if time.Now().After(deadline) {
			cvdtest.SkipOrFail(t, "the embedded default needs ports 2525 and 8080: %v", busy())
		}
	}
	wd := t.TempDir()
	s := startCVD(t, wd, []string{"CVD_CONFIG="})
	if s.addr != "127.0.0.1:2525" {
		t.Errorf("embedded default listens on %s", s.addr)
	}
	for _, f := range []string{"cvd-data/cvd.db", "cvd-data/keys/project.asc", "cvd-data/tls/cert.pem", "cvd-data/outbox/new"} {
		if _, err := os.Stat(filepath.Join(wd, f)); err != nil {
			t.Errorf("first run did not create %s: %v", f, err)
		}
	}
	out, err := swaks(t, "--server", "127.0.0.1:2525", "--to", "security@localhost", "--from", "reporter@example.net",
		"--header", "Subject: swaks report", "--body", "the bug")
	if err != nil || !regexp.MustCompile(`(?m)^<[-~] +250 .*queued`).MatchString(out) {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	// The quick start shows an acknowledgement, though nothing
	// authenticates reporter@example.net here.
	if ack := waitMail(t, filepath.Join(wd, "cvd-data"), "reporter@example.net", 1)[0]; !bytes.Contains(ack, []byte("Your security report was received")) {
		t.Errorf("acknowledgement:\n%s", ack)
	}
	out, err = swaks(t, "--server", "127.0.0.1:2525", "--tls", "--to", "security+2026-001@localhost", "--from", "reporter@example.net")
	if err != nil || !strings.Contains(out, "STARTTLS") || !regexp.MustCompile(`(?m)^<~ +250 .*queued`).MatchString(out) {
		t.Errorf("swaks --tls: %v\n%s", err, out)
	}
	out, _ = swaks(t, "--server", "127.0.0.1:2525", "--to", "nobody@localhost", "--from", "reporter@example.net")
	if !regexp.MustCompile(`(?m)^<\*\* +550 5\.1\.1`).MatchString(out) {
		t.Errorf("unknown local recipient:\n%s", out)
	}
	out, _ = swaks(t, "--server", "127.0.0.1:2525", "--to", "victim@example.com", "--from", "reporter@example.net")
	if !regexp.MustCompile(`(?m)^<\*\* +550 5\.7\.1`).MatchString(out) {
		t.Errorf("relaying attempt:\n%s", out)
	}
	s.stop(t)

	db, err := store.Open(context.Background(), filepath.Join(wd, "cvd-data/cvd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m, err := db.SpooledMessage(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Auth.Checked() || m.Auth.AuthServID != "localhost" {
		t.Errorf("sender not checked: %+v", m.Auth)
	}
	if m.MailFrom != "reporter@example.net" || !bytes.Contains(m.Raw, []byte("Subject: swaks report\r\n")) || !bytes.Contains(m.Raw, []byte("the bug")) {
		t.Errorf("spooled %q from %q", m.Raw, m.MailFrom)
	}
	if m2, err := db.SpooledMessage(context.Background(), 2); err != nil || !m2.TLS {
		t.Errorf("message over STARTTLS: %+v %v", m2, err)
	}
	if _, err := db.SpooledMessage(context.Background(), 3); err == nil {
		t.Error("refused mail was spooled")
	}
}

func TestSwaksAgainstInitConfig(t *testing.T) {
	_, cfg := initDir(t, "example.org")
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, bytes.Replace(b, []byte(`max_message_size = "25MiB"`), []byte(`max_message_size = "1MiB"`), 1), 0o600)
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	out, err := swaks(t, "--server", s.addr, "--to", "security@example.org", "--from", "reporter@example.net")
	if err != nil || !regexp.MustCompile(`(?m)^<[-~] +250 .*queued`).MatchString(out) {
		t.Errorf("swaks: %v\n%s", err, out)
	}
	big := filepath.Join(t.TempDir(), "big.eml")
	os.WriteFile(big, []byte("Subject: big\r\n\r\n"+strings.Repeat(strings.Repeat("a", 998)+"\r\n", 1100)), 0o600)
	out, _ = swaks(t, "--server", s.addr, "--to", "security@example.org", "--from", "reporter@example.net", "--data", "@"+big)
	if !regexp.MustCompile(`(?m)^<\*\* +552 `).MatchString(out) {
		t.Errorf("1.1 MB message not refused with 552:\n%s", out[max(0, len(out)-2000):])
	}
	s.stop(t)
}

// TestKill9KeepsAcceptedMail kills cvd abruptly while clients are sending;
// every message that got 250 must be in the database after a restart.
func TestKill9KeepsAcceptedMail(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)

	var mu sync.Mutex
	accepted := map[string]string{} // Message-ID -> raw
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.Dial(s.addr)
			if err != nil {
				return
			}
			defer c.Close()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("<%d.%d@kill9.example.net>", w, i)
				raw := fmt.Sprintf("Message-ID: %s\r\nSubject: k%d\r\n\r\n%s\r\n", id, i, strings.Repeat(strings.Repeat("z", 76)+"\r\n", i%50))
				if err := c.SendMail("r@example.net", []string{"security@example.org"}, strings.NewReader(raw)); err != nil {
					return // the server died
				}
				mu.Lock()
				accepted[id] = raw
				mu.Unlock()
			}
		}()
	}
	// Kill once a good number of messages went through, mid-stream.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(accepted)
		mu.Unlock()
		if n >= 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.Done
	close(stop)
	wg.Wait()
	if len(accepted) < 50 {
		t.Fatalf("only %d messages accepted before the kill", len(accepted))
	}

	// cvd starts again on the same data and stops cleanly.
	s2 := startCVD(t, t.TempDir(), nil, "--config", cfg)
	s2.stop(t)

	db, err := store.Open(context.Background(), filepath.Join(dir, "cvd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	list, err := db.ListSpool(context.Background(), 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, row := range list {
		m, err := db.SpooledMessage(context.Background(), row.ID)
		if err != nil {
			t.Fatal(err)
		}
		stored[string(m.Raw)] = true
	}
	lost := 0
	for id, raw := range accepted {
		if !stored[raw] {
			lost++
			t.Errorf("message %s got 250 but is not in the database", id)
		}
	}
	t.Logf("%d messages got 250 before kill -9, %d rows stored, %d lost", len(accepted), len(list), lost)
}
