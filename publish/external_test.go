package publish

import (
	"bytes"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/internal/cvdtest"
)

// findTool looks a program up in PATH and in the given extra places.
func findTool(name string, extra ...string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range extra {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// serveLocal serves h on 127.0.0.1 only.
func serveLocal(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// TestWKDWithGnuPG checks the WKD against GnuPG: the URL gpg-wks-client
// computes for security@example.org is served, and what it serves
// imports with gpg --import with the generated key's fingerprint.
func TestWKDWithGnuPG(t *testing.T) {
	wks := findTool("gpg-wks-client", "/usr/lib/gnupg/gpg-wks-client", "/usr/libexec/gpg-wks-client")
	gpg := findTool("gpg")
	if wks == "" || gpg == "" {
		cvdtest.SkipOrFail(t, "gpg or gpg-wks-client not installed (Debian: apt-get install gnupg gpg-wks-client)")
	}
	_, pub, err := crypto.GenerateKey("Example security team", "security@example.org", "")
	if err != nil {
		t.Fatal(err)
	}
	k, err := crypto.ParseKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	_, other, err := crypto.GenerateKey("Incident list", "security+2026-001@example.org", "")
	if err != nil {
		t.Fatal(err)
	}
	_, foreign, err := crypto.GenerateKey("Someone else", "security@elsewhere.example", "")
	if err != nil {
		t.Fatal(err)
	}
	s := newTestSite(t, testSource(t, []PublicKey{
		{Email: "Security@Example.org", Key: pub},
		{Email: "security+2026-001@example.org", Key: other},
		{Email: "security@elsewhere.example", Key: foreign},
	}))
	srv := serveLocal(t, s)

	home, err := os.MkdirTemp("/tmp", "gpgw") // short: the agent's socket path is limited
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GNUPGHOME="+home)
	t.Cleanup(func() {
		kill := exec.Command(findTool("gpgconf"), "--kill", "gpg-agent")
		kill.Env = env
		kill.Run()
		os.RemoveAll(home)
	})
	os.Chmod(home, 0o700)

	for _, addr := range []string{"security@example.org", "security+2026-001@example.org"} {
		cmd := exec.Command(wks, "--print-wkd-url", addr)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("gpg-wks-client: %v\n%s", err, out)
		}
		// GnuPG 2.2 prints the advanced-method URL (openpgpkey.DOMAIN),
		// later versions the direct one as well; both are served.
		var direct *url.URL
		for _, line := range strings.Fields(string(out)) {
			u, err := url.Parse(line)
			if err != nil {
				continue
			}
			switch {
			case u.Host == "example.org" && u.Path == WKDPath(addr):
				direct = u
			case u.Host == "openpgpkey.example.org" && u.Path == WKDAdvancedPath(addr):
				direct = u
			}
		}
		if direct == nil {
			t.Fatalf("%s: gpg-wks-client printed %q, want %s or %s", addr, out, WKDPath(addr), WKDAdvancedPath(addr))
		}
		if direct.RawQuery != "l="+strings.Split(addr, "@")[0] {
			t.Errorf("query %q", direct.RawQuery)
		}
		resp, err := http.Get(srv.URL + direct.RequestURI())
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/octet-stream" {
			t.Fatalf("%s: status %d, type %s", direct.RequestURI(), resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if strings.Contains(body, "-----BEGIN") {
			t.Error("WKD serves an armored key")
		}
		if addr != "security@example.org" {
			continue
		}
		imp := exec.Command(gpg, "--batch", "--import")
		imp.Env = env
		imp.Stdin = strings.NewReader(body)
		if out, err := imp.CombinedOutput(); err != nil {
			t.Fatalf("gpg --import: %v\n%s", err, out)
		}
		list := exec.Command(gpg, "--batch", "--with-colons", "--fingerprint", "security@example.org")
		list.Env = env
		out, err = list.CombinedOutput()
		if err != nil {
			t.Fatalf("gpg --fingerprint: %v\n%s", err, out)
		}
		var fprs []string
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
				fprs = append(fprs, f[9])
			}
		}
		if len(fprs) == 0 || !strings.EqualFold(fprs[0], k.Fingerprint()) {
			t.Errorf("imported fingerprints %v, want %s", fprs, k.Fingerprint())
		}
	}
	// security@elsewhere.example hashes to the same path (WKD hashes the
	// local part only): what is served there must be our key alone.
	code, _, body := get(t, s, WKDPath("security@elsewhere.example"))
	served, err := crypto.ParseKeys([]byte(body))
	if code != 200 || err != nil {
		t.Fatalf("%s: %d, %v", WKDPath("security@elsewhere.example"), code, err)
	}
	fk, err := crypto.ParseKey(foreign)
	if err != nil {
		t.Fatal(err)
	}
	for _, sk := range served {
		if sk.Fingerprint() == fk.Fingerprint() {
			t.Errorf("a key of another domain is published: %s %v", sk.Fingerprint(), sk.UserIDs())
		}
		for _, e := range sk.Emails() {
			if !strings.HasSuffix(strings.ToLower(e), "@example.org") {
				t.Errorf("the WKD serves a key with the user ID %s", e)
			}
		}
	}
	if len(served) != 1 || served[0].Fingerprint() != k.Fingerprint() {
		t.Errorf("the WKD serves %d keys, want the project key %s alone", len(served), k.Fingerprint())
	}
	for _, p := range []string{"/.well-known/openpgpkey/policy", "/.well-known/openpgpkey/example.org/policy"} {
		if code, _, _ := get(t, s, p); code != 200 {
			t.Errorf("WKD policy %s: %d", p, code)
		}
	}
	_, _, a := get(t, s, WKDPath("security@example.org"))
	_, _, b := get(t, s, WKDAdvancedPath("security@example.org"))
	if a == "" || a != b {
		t.Error("direct and advanced methods serve different keys")
	}
}

// TestAdvisoryPageInChromium renders the advisory page in headless
// Chromium: the screenshot has the window's size and is not blank, and
// the rendered DOM has the title, the score badge and the credits. It
// runs when chromium is installed, and must run when CVD_TEST_BROWSER=1.
func TestAdvisoryPageInChromium(t *testing.T) {
	chromium := findTool("chromium", "/usr/bin/chromium-browser")
	if chromium == "" {
		if os.Getenv("CVD_TEST_BROWSER") == "1" {
			t.Fatal("CVD_TEST_BROWSER=1 but chromium is not installed (Debian: apt-get install chromium)")
		}
		cvdtest.SkipOrFail(t, "chromium not installed (Debian: apt-get install chromium)")
	}
	srv := serveLocal(t, newTestSite(t, testSource(t, nil)))
	page := srv.URL + "/advisories/2026-001.html"
	dir := t.TempDir()
	shot := filepath.Join(dir, "advisory.png")
	run := func(extra ...string) []byte {
		profile, err := os.MkdirTemp("", "cvd-chromium")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(profile)
		args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + profile, "--window-size=1200,900"}, extra...)
		cmd := exec.Command(chromium, append(args, page)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium %v: %v\n%s", extra, err, stderr.String())
		}
		return stdout.Bytes()
	}
	run("--screenshot=" + shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 900 {
		t.Errorf("screenshot is %dx%d, want 1200x900", b.Dx(), b.Dy())
	}
	colours := map[uint32]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[(r>>8)<<16|(g>>8)<<8|bl>>8]++
		}
	}
	if len(colours) < 20 {
		t.Errorf("screenshot looks blank: %d colours", len(colours))
	}
	if os.Getenv("CVD_KEEP_SCREENSHOT") != "" {
		data, _ := os.ReadFile(shot)
		os.WriteFile(os.Getenv("CVD_KEEP_SCREENSHOT"), data, 0o644)
	}

	dom := string(run("--dump-dom"))
	for _, want := range []string{
		"<h1>Heap buffer overflow in the frobnicator's header parser</h1>",
		`id="score">8.9 High</span>`,
		`<ul class="credits" id="credits">`, "Jane Researcher", "Élodie Fixer",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q", want)
		}
	}
}
