package main

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
	"github.com/cvd-project/cvd/publish"
)

var webAddrRE = regexp.MustCompile(`msg="cvd ready".* web=(\S+)`)

// webAddr is the site's address from the server's ready line.
func (s *server) webAddr(t *testing.T) string {
	t.Helper()
	m := webAddrRE.FindStringSubmatch(s.logs())
	if m == nil || m[1] == "off" {
		t.Fatalf("no web address in the ready line:\n%s", s.logs())
	}
	return m[1]
}

// httpGet fetches a page of the running site.
func httpGet(t *testing.T, base, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// report mails a plain report to security@ and returns the incident ID
// from the acknowledgement.
func report(t *testing.T, s *server, dir, from, subject string, acks int) string {
	t.Helper()
	return namedReport(t, s, dir, "", from, subject, acks)
}

// namedReport is report with a display name in From.
func namedReport(t *testing.T, s *server, dir, name, from, subject string, acks int) string {
	t.Helper()
	mail := filepath.Join(t.TempDir(), "report.eml")
	msgID := "<" + strings.ReplaceAll(subject, " ", ".") + "@reporter.example>"
	os.WriteFile(mail, []byte("From: "+name+" <"+from+">\r\nTo: security@example.org\r\nSubject: "+subject+"\r\nMessage-ID: "+
		msgID+"\r\n\r\nDetails.\r\n"), 0o600)
	if out, err := swaks(t, "--server", s.addr, "--from", from, "--to", "security@example.org", "--data", "@"+mail); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	// The acknowledgements of several reports may be delivered in any
	// order: this report's is the one that answers its Message-ID.
	var ack []byte
	waitFor(t, "the acknowledgement answering "+msgID, func() bool {
		for _, m := range outboxMail(t, dir)[from] {
			if cvdtest.Header(m, "In-Reply-To") == msgID {
				ack = m
				return true
			}
		}
		return false
	}, func() string { return outboxListing(t, dir) + "\n" + s.Logs() })
	if n := len(outboxMail(t, dir)[from]); n < acks {
		t.Fatalf("%s has %d messages, want at least %d\n%s", from, n, acks, outboxListing(t, dir))
	}
	id := regexp.MustCompile(`incident (\d{4}-\d{3})`).FindSubmatch(ack)
	if id == nil {
		t.Fatalf("acknowledgement:\n%s", ack)
	}
	return string(id[1])
}

// TestPublicSiteAndOneClick runs the public face against a real server:
// one incident released, one still embargoed; the site, the WKD key, the
// static build and the mbox export show the first and nothing of the
// second; a subscriber leaves the announce list with the RFC 8058 POST
// from their copy of the announcement.
func TestPublicSiteAndOneClick(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	base := "http://" + s.webAddr(t)
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		code, out, errOut := runCVD(t, dir, nil, append(args, "--config", cfg)...)
		if code != wantCode {
			t.Fatalf("cvd %v: exit %d, want %d\n%s%s", args, code, wantCode, out, errOut)
		}
		return out + errOut
	}
	cli(0, "member", "add", "announce", "sam@users.example", "--role", "subscriber")

	pub := report(t, s, dir, "rita@reporter.example", "parser crash", 1)
	secret := report(t, s, dir, "rita@reporter.example", "another bug", 2)
	cli(0, "incident", "confirm", pub, "--privacy", "public")
	cli(0, "incident", "set", pub, "title", "Parser crash on empty input")
	cli(0, "incident", "set", pub, "description", "An empty input file crashes the parser.")
	cli(0, "incident", "cvss", pub, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H")
	cli(0, "incident", "versions", pub, "libexample", "--introduced", "1.0", "--fixed", "1.2.3")
	cli(0, "incident", "credit", pub, "Rita Reporter", "--type", "finder")
	const secretTitle = "SECRETTITLE heap overflow in frob"
	cli(0, "incident", "confirm", secret)
	cli(0, "incident", "set", secret, "title", secretTitle)
	cli(0, "incident", "credit", secret, "SECRETCREDIT Mallory")
	if out := cli(1, "incident", "export", pub, "--format", "mbox"); !strings.Contains(out, "not published") {
		t.Errorf("mbox before release: %s", out)
	}
	cli(0, "incident", "publish", pub)

	// security.txt and the project key in the Web Key Directory.
	code, txt := httpGet(t, base, "/.well-known/security.txt")
	if code != 200 || !strings.Contains(txt, "Contact: mailto:security@example.org\n") || !strings.Contains(txt, "Canonical: https://example.org/.well-known/security.txt\n") ||
		!regexp.MustCompile(`(?m)^Expires: \d{4}-\d\d-\d\dT`).MatchString(txt) {
		t.Errorf("security.txt: %d\n%s", code, txt)
	}
	// Signed with the project key, as RFC 9116 recommends; gpg agrees.
	if !strings.HasPrefix(txt, "-----BEGIN PGP SIGNED MESSAGE-----\n") {
		t.Errorf("security.txt is not signed:\n%s", txt)
	}
	reader := gpgtest.New(t, "Reader", "reader@example.net", "never")
	projectPub, _ := os.ReadFile(filepath.Join(dir, "keys/project.pub.asc"))
	reader.Import(projectPub)
	if _, status, err := reader.Try([]byte(txt), "--decrypt"); err != nil || !gpgtest.HasStatus(status, "GOODSIG") {
		t.Errorf("gpg does not verify security.txt: %v\n%s", err, status)
	}
	enc := regexp.MustCompile(`(?m)^Encryption: https://example\.org(/\.well-known/openpgpkey/hu/[a-z0-9]+)\?l=security$`).FindStringSubmatch(txt)
	if enc == nil || enc[1] != publish.WKDPath("security@example.org") {
		t.Fatalf("security.txt has no WKD Encryption line:\n%s", txt)
	}
	code, key := httpGet(t, base, enc[1])
	keyFile := filepath.Join(t.TempDir(), "wkd.key")
	os.WriteFile(keyFile, []byte(key), 0o600)
	project := gpgShowKey(t, filepath.Join(dir, "keys/project.pub.asc"))
	fpr := regexp.MustCompile(`(?m)^fpr:+([0-9A-F]{40}):`).FindStringSubmatch(project)
	if code != 200 || fpr == nil || !strings.Contains(gpgShowKey(t, keyFile), fpr[1]) {
		t.Errorf("WKD key: %d, not the project key %v", code, fpr)
	}

	// The released advisory is everywhere; the embargoed incident nowhere.
	for path, want := range map[string]string{
		"/":                                "Parser crash on empty input",
		"/index.html":                      "Parser crash on empty input",
		"/advisories/" + pub + ".html":     "7.5",
		"/advisories/" + pub + ".osv.json": `1.2.3`,
		"/acknowledgements.html":           "Rita Reporter",
		"/advisories.atom":                 "Parser crash on empty input",
	} {
		code, body := httpGet(t, base, path)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, no %q", path, code, want)
		}
		if strings.Contains(body, "SECRET") || strings.Contains(body, secret) {
			t.Errorf("GET %s shows the embargoed incident", path)
		}
	}
	for _, suffix := range []string{"", ".html", ".txt", ".osv.json", ".csaf.json", ".cve.json"} {
		if code, _ := httpGet(t, base, "/advisories/"+secret+suffix); code != 404 {
			t.Errorf("GET /advisories/%s%s: %d", secret, suffix, code)
		}
	}

	// The subscriber's copy of the announcement carries the one-click
	// link; a GET only shows the button, the POST unsubscribes.
	ann := string(waitMail(t, dir, "sam@users.example", 1)[0])
	link := regexp.MustCompile(`List-Unsubscribe: <https://example\.org(/unsubscribe/[A-Za-z0-9_-]+)>`).FindStringSubmatch(ann)
	if link == nil || !strings.Contains(ann, "List-Unsubscribe-Post: List-Unsubscribe=One-Click") {
		t.Fatalf("announcement copy without one-click headers:\n%.2000s", ann)
	}
	if code, body := httpGet(t, base, link[1]); code != 200 || !strings.Contains(body, `value="One-Click"`) {
		t.Errorf("GET %s: %d\n%s", link[1], code, body)
	}
	if out := cli(0, "member", "list", "announce"); !regexp.MustCompile(`sam@users\.example +subscriber +active`).MatchString(out) {
		t.Fatalf("a GET unsubscribed:\n%s", out)
	}
	post := func(path string) (int, string) {
		t.Helper()
		resp, err := http.PostForm(base+path, url.Values{"List-Unsubscribe": {"One-Click"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, done := post(link[1])
	if code != 200 {
		t.Errorf("one-click POST: %d\n%s", code, done)
	}
	if out := cli(0, "member", "list", "announce"); !regexp.MustCompile(`sam@users\.example +subscriber +removed`).MatchString(out) {
		t.Errorf("not unsubscribed:\n%s", out)
	}
	if code, again := post(link[1]); code != 200 || again != done {
		t.Errorf("repeated POST: %d, a different page", code)
	}
	if code, unknown := post("/unsubscribe/nosuchtokennosuchtoken"); code != 200 || unknown != done {
		t.Errorf("unknown token: %d, a page that differs from a known token's", code)
	}
	waitMail(t, dir, "sam@users.example", 2) // "you are unsubscribed"

	// The mbox of the public messages: the signed announcement.
	mbox := cli(0, "incident", "export", pub, "--format", "mbox")
	if !strings.HasPrefix(mbox, "From security@example.org ") || !strings.Contains(mbox, "multipart/signed") ||
		!strings.Contains(mbox, "Parser crash on empty input") || strings.Contains(mbox, "List-Unsubscribe:") {
		t.Errorf("mbox:\n%.3000s", mbox)
	}
	if out := cli(1, "incident", "export", secret, "--format", "mbox"); !strings.Contains(out, "not published") || strings.Contains(out, "SECRET") {
		t.Errorf("mbox of the embargoed incident: %s", out)
	}

	// The same site as static files.
	site := filepath.Join(t.TempDir(), "site")
	cli(0, "site", "build", site)
	for _, f := range []string{"index.html", ".well-known/security.txt", "advisories/" + pub + ".html", "advisories.atom", "style.css",
		strings.TrimPrefix(enc[1], "/")} {
		if _, err := os.Stat(filepath.Join(site, f)); err != nil {
			t.Errorf("site build: %v", err)
		}
	}
	filepath.Walk(site, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			if strings.Contains(string(b), "SECRET") || strings.Contains(filepath.Base(p), secret) {
				t.Errorf("static site file %s shows the embargoed incident", p)
			}
		}
		return nil
	})
	if code, out, errOut := runCVD(t, dir, nil, "site", "build", "--config", cfg); code != 2 || !strings.Contains(errOut, "web.static_dir") {
		t.Errorf("site build without a folder: %d %s%s", code, out, errOut)
	}
	s.stop(t)
}

// TestWebOff: an empty web.listen runs no web server.
func TestWebOff(t *testing.T) {
	_, cfg := initDir(t, "example.org")
	b, _ := os.ReadFile(cfg)
	b = regexp.MustCompile(`(?s)(\[web\].*?)listen = "127.0.0.1:0"`).ReplaceAll(b, []byte(`${1}listen = ""`))
	os.WriteFile(cfg, b, 0o600)
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	if !strings.Contains(s.logs(), " web=off ") {
		t.Errorf("ready line:\n%s", s.logs())
	}
	s.stop(t)
}
