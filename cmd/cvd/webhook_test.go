package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/webhook"
)

// hookReceiver is a webhook receiver as an operator would write one: it
// checks the HMAC over the timestamp and the body with its own secret
// and the timestamp's age, and answers with the status fail gives.
type hookReceiver struct {
	*httptest.Server
	secret string
	// fail returns the status for the n-th request (from 1); 200 when nil.
	fail func(n int) int
	hang chan struct{}

	mu   sync.Mutex
	hits []hookHit
}

type hookHit struct {
	event, err string
	raw        string
	status     int
	body       map[string]any
}

func newHookReceiver(t *testing.T, secret string, fail func(int) int) *hookReceiver {
	r := &hookReceiver{secret: secret, fail: fail}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *hookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if r.hang != nil {
		<-r.hang
		return
	}
	h := hookHit{event: req.Header.Get("Cvd-Event"), raw: string(body), status: http.StatusOK}
	ts, terr := strconv.ParseInt(req.Header.Get("Cvd-Timestamp"), 10, 64)
	m := hmac.New(sha256.New, []byte(r.secret))
	m.Write([]byte(req.Header.Get("Cvd-Timestamp") + "."))
	m.Write(body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	switch {
	case req.Method != http.MethodPost:
		h.err = "method " + req.Method
	case terr != nil || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Minute:
		h.err = "timestamp " + req.Header.Get("Cvd-Timestamp")
	case !hmac.Equal([]byte(want), []byte(req.Header.Get("Cvd-Signature"))):
		h.err = "bad signature"
	}
	if err := json.Unmarshal(body, &h.body); err != nil && h.err == "" {
		h.err = "body: " + err.Error()
	}
	r.mu.Lock()
	if h.err != "" {
		h.status = http.StatusUnauthorized
	} else if r.fail != nil {
		h.status = r.fail(len(r.hits) + 1)
	}
	r.hits = append(r.hits, h)
	r.mu.Unlock()
	w.WriteHeader(h.status)
}

func (r *hookReceiver) got() []hookHit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookHit(nil), r.hits...)
}

// addWebhook configures an endpoint with its secret file.
func addWebhook(t *testing.T, dir, cfg, name, url, secret, extra string) {
	t.Helper()
	f := filepath.Join(dir, "webhook-"+name+".secret")
	if err := os.WriteFile(f, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cvdtest.AppendConfig(t, cfg, "\n[[announce.webhook]]\nname = \""+name+"\"\nurl = \""+url+"\"\nsecret_file = \""+f+"\"\n"+extra)
}

// releasePublic runs a public incident to its release with the CLI.
func releasePublic(t *testing.T, s *server, dir string, cli func(int, ...string) string) string {
	t.Helper()
	id := namedReport(t, s, dir, "Rita", "rita@reporter.example", "hook crash", 1)
	cli(0, "incident", "confirm", id, "--privacy", "public")
	cli(0, "incident", "set", id, "title", "Crash in the hook parser")
	cli(0, "incident", "set", id, "description", "A long header crashes the parser.")
	cli(0, "incident", "versions", id, "libexample", "--fixed", "2.0")
	cli(0, "incident", "set", id, "note", "INTERNALMARK customer Initech")
	cli(0, "incident", "backport", id, "1.2", "no-INTERNALMARK")
	cli(0, "incident", "decide", id, "exploit=never")
	cli(0, "incident", "publish", id)
	return id
}

// TestWebhookReleaseEvent: a release posts one signed event to each
// configured endpoint; the receiver's own HMAC check passes; the
// endpoint that answered 500 gets the same event again after the
// back-off (here: a restart a few minutes later), and nothing is posted
// twice after success, across restarts.
func TestWebhookReleaseEvent(t *testing.T) {
	const chatSecret, blogSecret = "chat-0123456789abcdef0123456789abcdef", "blog-fedcba9876543210fedcba9876543210"
	chat := newHookReceiver(t, chatSecret, func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	blog := newHookReceiver(t, blogSecret, nil)
	dir, cfg := initDir(t, "example.org")
	addWebhook(t, dir, cfg, "chat", chat.URL+"/hooks/cvd", chatSecret, "")
	addWebhook(t, dir, cfg, "blog", blog.URL+"/build", blogSecret, "")
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		code, out, errOut := runCVD(t, dir, nil, append(args, "--config", cfg)...)
		if code != wantCode {
			t.Fatalf("cvd %v: exit %d, want %d\n%s%s", args, code, wantCode, out, errOut)
		}
		return out + errOut
	}
	diag := func() string { return cli(0, "webhook", "list", "--all") + "\n" + s.Logs() }
	id := releasePublic(t, s, dir, cli)

	waitFor(t, "the event at both endpoints", func() bool { return len(chat.got()) == 1 && len(blog.got()) == 1 }, diag)
	b := blog.got()[0]
	if b.err != "" || b.body["type"] != "advisory.released" || b.body["incident"] != id || b.body["title"] != "Crash in the hook parser" ||
		!strings.Contains(b.body["url"].(string), id) {
		t.Errorf("blog got %+v", b)
	}
	if strings.Contains(b.raw, "INTERNALMARK") || strings.Contains(b.raw, "rita@") || strings.Contains(b.raw, "exploit") {
		t.Errorf("the event carries internal facts:\n%s", b.raw)
	}
	if c := chat.got()[0]; c.err != "" || c.status != 500 || c.event != b.event {
		t.Errorf("chat got %+v", c)
	}
	waitFor(t, "the 500 recorded", func() bool { return strings.Contains(cli(0, "webhook", "list"), "HTTP 500") }, diag)
	if out := cli(0, "webhook", "list"); !strings.Contains(out, "chat") || !strings.Contains(out, "deferred") || strings.Contains(out, "blog") {
		t.Errorf("webhook list:\n%s", out)
	}
	s.stop(t)
	logs := s.Logs()

	// Past the first back-off (1 minute): the deferred event goes again.
	s = startCVD(t, t.TempDir(), []string{"CVD_CLOCK_OFFSET=2m"}, "--config", cfg)
	waitFor(t, "the retry to chat", func() bool { return len(chat.got()) == 2 }, diag)
	if c := chat.got()[1]; c.err != "" || c.status != 200 || c.event != b.event || c.body["incident"] != id {
		t.Errorf("chat retry %+v", c)
	}
	waitFor(t, "the retry recorded", func() bool { return !strings.Contains(cli(0, "webhook", "list"), "chat") }, diag)
	s.stop(t)
	logs += s.Logs()

	s = startCVD(t, t.TempDir(), []string{"CVD_CLOCK_OFFSET=6h"}, "--config", cfg)
	time.Sleep(3 * time.Second) // more than the worker's poll
	s.stop(t)
	logs += s.Logs()
	if n, m := len(chat.got()), len(blog.got()); n != 2 || m != 1 {
		t.Errorf("after success and restarts: chat got %d posts (want 2), blog %d (want 1)", n, m)
	}
	out := cli(0, "webhook", "list", "--all")
	if strings.Count(out, " sent ") != 2 {
		t.Errorf("webhook list --all:\n%s", out)
	}
	for _, secret := range []string{chatSecret, blogSecret, "/hooks/cvd"} {
		if strings.Contains(logs+out, secret) {
			t.Errorf("%q in the logs or the listing", secret)
		}
	}
}

// TestWebhookHangingReceiver: a receiver that never answers is given up
// on after the endpoint's timeout and retried later; the release and the
// other endpoint do not wait for it, and cvd stops promptly.
func TestWebhookHangingReceiver(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef-hang"
	slow := newHookReceiver(t, secret, nil)
	slow.hang = make(chan struct{})
	t.Cleanup(func() { close(slow.hang) })
	fast := newHookReceiver(t, secret, nil)
	dir, cfg := initDir(t, "example.org")
	addWebhook(t, dir, cfg, "slow", slow.URL, secret, "timeout = \"500ms\"\n")
	addWebhook(t, dir, cfg, "fast", fast.URL, secret, "")
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		code, out, errOut := runCVD(t, dir, nil, append(args, "--config", cfg)...)
		if code != wantCode {
			t.Fatalf("cvd %v: exit %d, want %d\n%s%s", args, code, wantCode, out, errOut)
		}
		return out + errOut
	}
	diag := func() string { return cli(0, "webhook", "list", "--all") + "\n" + s.Logs() }
	releasePublic(t, s, dir, cli)
	waitFor(t, "the event at the fast endpoint", func() bool { return len(fast.got()) == 1 }, diag)
	waitFor(t, "the slow endpoint given up on", func() bool {
		out := cli(0, "webhook", "list")
		return strings.Contains(out, "slow") && strings.Contains(out, "deferred") && strings.Contains(out, "no answer within 500ms")
	}, diag)
	start := time.Now()
	s.stop(t)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stopping took %s", d)
	}
}

// TestContribWebhookReceiver runs the example receiver of contrib/
// against cvd: it takes the release event, and refuses a forged
// signature, a stale timestamp and a second copy of the event.
func TestContribWebhookReceiver(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		cvdtest.SkipOrFail(t, "python3 is not installed: %v", err)
	}
	const secret = "contrib-0123456789abcdef0123456789abcdef"
	dir, cfg := initDir(t, "example.org")
	secretFile := filepath.Join(dir, "webhook-contrib.secret")
	os.WriteFile(secretFile, []byte(secret+"\n"), 0o600)
	addr := cvdtest.FreeAddr(t)
	cmd := exec.Command(py, "../../contrib/webhook-receiver.py", "--secret-file", secretFile, "--listen", addr)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, "the receiver listening", func() bool { return strings.Contains(stderr.String(), "listening") }, stderr.String)
	addWebhook(t, dir, cfg, "contrib", "http://"+addr+"/", secret, "")
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		code, out, errOut := runCVD(t, dir, nil, append(args, "--config", cfg)...)
		if code != wantCode {
			t.Fatalf("cvd %v: exit %d, want %d\n%s%s", args, code, wantCode, out, errOut)
		}
		return out + errOut
	}
	id := releasePublic(t, s, dir, cli)
	waitFor(t, "the event printed by the receiver", func() bool { return strings.Contains(stdout.String(), id+" - Crash in the hook parser") },
		func() string { return stdout.String() + stderr.String() + s.Logs() })

	post := func(ts int64, sig string, body []byte) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/", strings.NewReader(string(body)))
		req.Header.Set("Cvd-Timestamp", strconv.FormatInt(ts, 10))
		req.Header.Set("Cvd-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	body := []byte(`{"id":"example.org:` + id + `:released","incident":"` + id + `","title":"FORGED"}`)
	nowTS := time.Now().Unix()
	if c := post(nowTS, webhook.Sign([]byte("not-the-secret-0123456789abcdef01"), nowTS, body), body); c != 401 {
		t.Errorf("forged signature: %d", c)
	}
	if c := post(nowTS-3600, webhook.Sign([]byte(secret), nowTS-3600, body), body); c != 401 {
		t.Errorf("stale timestamp: %d", c)
	}
	if c := post(nowTS, webhook.Sign([]byte(secret), nowTS, body), body); c != 200 {
		t.Errorf("repeated event: %d", c)
	}
	if strings.Contains(stdout.String(), "FORGED") || strings.Count(stdout.String(), "\n") != 1 {
		t.Errorf("receiver printed:\n%s", stdout.String())
	}
}
