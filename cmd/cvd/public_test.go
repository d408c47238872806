package main

import (
	"mime"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

const externalList = "oss-security@lists.example.net"

// publicDir starts cvd with an external list and a subscriber on the
// announce list, and returns the helpers the public-output tests share.
func publicServer(t *testing.T, extra string) (dir, cfg string, s *server, cli func(int, ...string) string) {
	t.Helper()
	dir, cfg = initDir(t, "example.org")
	cvdtest.SetConfig(t, cfg, "external", `["`+externalList+`"]`)
	if extra != "" {
		cvdtest.AppendConfig(t, cfg, extra)
	}
	s = startCVD(t, t.TempDir(), nil, "--config", cfg)
	cli = func(wantCode int, args ...string) string {
		t.Helper()
		code, out, errOut := runCVD(t, dir, nil, append(args, "--config", cfg)...)
		if code != wantCode {
			t.Fatalf("cvd %v: exit %d, want %d\n%s%s", args, code, wantCode, out, errOut)
		}
		return out + errOut
	}
	cli(0, "member", "add", "announce", "sam@users.example", "--role", "subscriber")
	return dir, cfg, s, cli
}

// TestInternalFactsNeverPublished publishes incidents full of internal
// facts (backport decisions, notes, the downstream's name and address,
// the uncredited reporter's name and address) and looks for them in
// every public output: the copies to the external list and to announce
// subscribers, every page, record and the feed of the site over HTTP,
// the exports (text, CVE, OSV, CSAF, mbox) and the static site build.
// First the attack of issue 22: an advisory without a description must
// not be released from the raw facts.
func TestInternalFactsNeverPublished(t *testing.T) {
	distro := gpgtest.New(t, "Initech Distro", "security@initech-distro.example", "never")
	dir, cfg, s, cli := publicServer(t, "")
	os.WriteFile(filepath.Join(dir, "keys/distro.asc"), distro.Pub, 0o600)
	cvdtest.AppendConfig(t, cfg, "[[embargo.roster]]\nname = \"Initech Distro\"\nemail = \"security@initech-distro.example\"\nkey_file = \"keys/distro.asc\"\n")
	base := "http://" + s.webAddr(t)
	internal := []string{"INTERNALMARK", "Initech", "initech", "Hidden", "hidden.reporter"}
	leaks := func(where, text string) {
		t.Helper()
		for _, m := range internal {
			if strings.Contains(text, m) {
				t.Errorf("%s shows internal %q:\n%.3000s", where, m, text)
			}
		}
	}

	// 1. Fast path, no description: refused with what is missing.
	fast := namedReport(t, s, dir, "Rita Hidden", "rita.hidden.reporter@reporter.example", "parser crash", 1)
	cli(0, "incident", "confirm", fast, "--privacy", "public")
	cli(0, "incident", "set", fast, "title", "T2")
	cli(0, "incident", "backport", fast, "1.2", "wontfix: INTERNALMARK customer Initech still on 1.2")
	cli(0, "incident", "versions", fast, "libexample", "--fixed", "2.0")
	if out := cli(1, "incident", "publish", fast); !strings.Contains(out, "missing: description") || !strings.Contains(out, "--force") {
		t.Errorf("publish of an incomplete advisory: %s", out)
	}
	if got := outboxMail(t, dir)[externalList]; len(got) != 0 {
		t.Fatalf("an incomplete advisory went to the external list:\n%s", got[0])
	}
	if code, _ := httpGet(t, base, "/advisories/"+fast+".html"); code != 404 {
		t.Errorf("page of the unreleased incident: %d", code)
	}
	// Forced: a placeholder description, public facts only, and a page.
	cli(0, "incident", "publish", fast, "--force")
	ext := string(waitMail(t, dir, externalList, 1)[0])
	leaks("forced announcement", ext)
	if !strings.Contains(ext, "T2") || !strings.Contains(ext, "not published yet") {
		t.Errorf("forced announcement:\n%s", ext)
	}
	link := regexp.MustCompile(`https://example\.org(/advisories/[0-9-]+\.html)`).FindStringSubmatch(ext)
	if link == nil {
		t.Fatalf("announcement without a link:\n%s", ext)
	}
	if code, page := httpGet(t, base, link[1]); code != 200 || !strings.Contains(page, "T2") {
		t.Errorf("the announcement links to %s: %d", link[1], code)
	}

	// 2. An embargoed incident, pre-notified to a downstream, complete,
	// released early: everything internal stays inside.
	id := namedReport(t, s, dir, "Rita Hidden", "rita.hidden.reporter@other.example", "heap overflow", 1)
	cli(0, "incident", "confirm", id)
	cli(0, "incident", "set", id, "title", "Heap overflow in header parsing")
	cli(0, "incident", "set", id, "description", "A crafted header overflows a heap buffer.")
	cli(0, "incident", "set", id, "workaround", "Limit header length in the proxy.")
	cli(0, "incident", "versions", id, "libexample", "--introduced", "1.0", "--fixed", "1.4.2")
	cli(0, "incident", "cvss", id, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
	cli(0, "incident", "cve", id, "CVE-2026-12345")
	cli(0, "incident", "credit", id, "anonymous")
	cli(0, "incident", "backport", id, "1.2", "wontfix: INTERNALMARK customer Initech still on 1.2")
	cli(0, "incident", "set", id, "note", "INTERNALMARK: ask Initech before the date")
	date := regexp.MustCompile(`embargo \S+ (\S+)\)`).FindStringSubmatch(cli(0, "incident", "embargo", id, "--propose"))
	if date == nil {
		t.Fatal("no proposed date")
	}
	cli(0, "incident", "embargo", id, date[1])
	if out := cli(0, "incident", "notify", id); !strings.Contains(out, "initech-distro") {
		t.Fatalf("notify: %s", out)
	}
	waitMail(t, dir, distro.Email, 1)
	if out := cli(0, "incident", "show", id); !strings.Contains(out, "INTERNALMARK: ask Initech") {
		t.Errorf("show lacks the note:\n%s", out)
	}
	cli(0, "incident", "publish", id, "--now", "--reason", "the fix is public")

	ext = string(waitMail(t, dir, externalList, 2)[1])
	if !strings.Contains(ext, "A crafted header overflows") {
		t.Errorf("announcement:\n%s", ext)
	}
	for _, m := range outboxMail(t, dir)[externalList] {
		leaks("copy to "+externalList, string(m))
	}
	subs := waitMail(t, dir, "sam@users.example", 2)
	for _, m := range subs {
		leaks("announce subscriber's copy", string(m))
	}
	for _, path := range []string{"/", "/index.html", "/advisories/", "/advisories.atom", "/acknowledgements.html",
		"/advisories/" + id + ".html", "/advisories/" + id + ".txt", "/advisories/" + id + ".osv.json",
		"/advisories/" + id + ".csaf.json",
		"/advisories/" + fast + ".html", "/advisories/" + fast + ".txt", "/advisories/" + fast + ".osv.json", "/advisories/" + fast + ".csaf.json"} {
		code, body := httpGet(t, base, path)
		if code != 200 {
			t.Errorf("GET %s: %d", path, code)
		}
		leaks("GET "+path, body)
	}
	for _, inc := range []string{fast, id} {
		for _, f := range []string{"text", "cve", "osv", "csaf", "mbox"} {
			code, out, errOut := runCVD(t, dir, nil, "incident", "export", inc, "--format", f, "--config", cfg)
			if code != 0 && f != "cve" { // a CVE record needs a CNA (not configured)
				t.Errorf("export %s --format %s: exit %d %s", inc, f, code, errOut)
			}
			leaks("export "+inc+" "+f, out)
		}
	}
	site := filepath.Join(t.TempDir(), "site")
	cli(0, "site", "build", site)
	n := 0
	filepath.Walk(site, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			leaks("static "+strings.TrimPrefix(p, site), string(b))
			n++
		}
		return nil
	})
	if n < 10 {
		t.Errorf("the static site has %d files", n)
	}
}

// TestPublicTextFields: bidirectional formatting and control characters
// are refused in every text that reaches public output, naming the
// character; a non-ASCII title reaches the announcement's Subject RFC
// 2047 encoded.
func TestPublicTextFields(t *testing.T) {
	dir, _, s, cli := publicServer(t, "")
	id := namedReport(t, s, dir, "Rita", "rita@reporter.example", "spoof", 1)
	cli(0, "incident", "confirm", id, "--privacy", "public")
	for _, c := range [][]string{
		{"set", id, "title", "Fix \u202Eevil\u202C in parser"},
		{"set", id, "description", "Line one\n\u2067hidden\u2069"},
		{"set", id, "workaround", "press \x1b[31m"},
		{"set", id, "type", "Denial\u0085of service"},
		{"credit", id, "Mallory \u202Dreversed"},
		{"versions", id, "lib\u202Eexample", "--fixed", "1.0"},
		{"backport", id, "1.2", "yes\u202E"},
	} {
		out := cli(1, append([]string{"incident"}, c...)...)
		if !regexp.MustCompile(`U\+(202[A-E]|206[6-9]|001B|0085)`).MatchString(out) {
			t.Errorf("%q: %s", c, out)
		}
	}
	if out := cli(0, "incident", "show", id); strings.ContainsAny(out, "\u202A\u202B\u202C\u202D\u202E\u2066\u2067\u2068\u2069\x1b\u0085") {
		t.Errorf("a refused value was recorded:\n%s", out)
	}
	const title = "Débordement de tampon dans l’analyseur"
	cli(0, "incident", "set", id, "title", title)
	cli(0, "incident", "set", id, "description", "Un en-tête trop long déborde.\n\tDétails\tà suivre.")
	cli(0, "incident", "versions", id, "libexample", "--fixed", "2.0")
	cli(0, "incident", "publish", id)
	for _, rcpt := range []string{externalList, "sam@users.example"} {
		raw := waitMail(t, dir, rcpt, 1)[0]
		head, _, _ := strings.Cut(strings.ReplaceAll(string(raw), "\r\n", "\n"), "\n\n")
		for i := 0; i < len(head); i++ {
			if head[i] >= 0x80 {
				t.Errorf("copy to %s: 8-bit byte in the header:\n%s", rcpt, head)
				break
			}
		}
		subj := cvdtest.Header(raw, "Subject")
		dec, err := new(mime.WordDecoder).DecodeHeader(subj)
		if !strings.Contains(subj, "=?utf-8?q?") || err != nil || !strings.Contains(dec, title) {
			t.Errorf("copy to %s: Subject %q decodes to %q (%v)", rcpt, subj, dec, err)
		}
	}
}

// TestScheduledReleaseHeld: when the public date passes (here: while cvd
// is down) and the advisory lacks a description, the scheduler releases
// nothing, tells the coordinator what is missing, and a later publish
// sends only public facts.
func TestScheduledReleaseHeld(t *testing.T) {
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	dir, cfg := initDir(t, "example.org")
	projectPub, _ := os.ReadFile(filepath.Join(dir, "keys/project.pub.asc"))
	cora.Import(projectPub)
	os.WriteFile(filepath.Join(dir, "keys/cora.asc"), cora.Pub, 0o600)
	cvdtest.SetConfig(t, cfg, "external", `["`+externalList+`"]`)
	cvdtest.AppendConfig(t, cfg, "[[embargo.team]]\nname = \"Cora\"\nemail = \"cora@example.org\"\nkey_file = \"keys/cora.asc\"\n")
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	later := []string{"CVD_CLOCK_OFFSET=168h"}
	cli := func(env []string, wantCode int, args ...string) string {
		t.Helper()
		code, out, errOut := runCVD(t, dir, env, append(args, "--config", cfg)...)
		if code != wantCode {
			t.Fatalf("cvd %v: exit %d, want %d\n%s%s", args, code, wantCode, out, errOut)
		}
		return out + errOut
	}
	id := namedReport(t, s, dir, "Rita", "rita@reporter.example", "overflow", 1)
	cli(nil, 0, "incident", "confirm", id)
	cli(nil, 0, "incident", "set", id, "title", "Overflow in the parser")
	cli(nil, 0, "incident", "versions", id, "libexample", "--fixed", "2.0")
	cli(nil, 0, "incident", "backport", id, "1.2", "wontfix: INTERNALMARK customer Initech still on 1.2")
	date := regexp.MustCompile(`embargo \S+ (\S+)\)`).FindStringSubmatch(cli(nil, 0, "incident", "embargo", id, "--propose"))
	if date == nil {
		t.Fatal("no proposed date")
	}
	cli(nil, 0, "incident", "embargo", id, date[1])
	cli(nil, 0, "incident", "notify", id)
	before := len(outboxMail(t, dir)[cora.Email])
	s.stop(t)

	s = startCVD(t, t.TempDir(), later, "--config", cfg)
	held := waitMail(t, dir, cora.Email, before+1)[before]
	plain, _, err := cora.Decrypt(held)
	if err != nil || !strings.Contains(plain, "NOT RELEASED") || !strings.Contains(plain, "Missing: description") {
		t.Errorf("held notice: %v\n%s", err, plain)
	}
	if got := outboxMail(t, dir)[externalList]; len(got) != 0 {
		t.Fatalf("the scheduler released an incomplete advisory:\n%s", got[0])
	}
	if out := cli(later, 0, "incident", "show", id); !strings.Contains(out, "prenotified") || !strings.Contains(out, "Release held:") {
		t.Errorf("show:\n%s", out)
	}
	if out := cli(later, 1, "incident", "publish", id); !strings.Contains(out, "missing: description") {
		t.Errorf("publish while incomplete: %s", out)
	}
	cli(later, 0, "incident", "set", id, "description", "A long header overflows a buffer.")
	cli(later, 0, "incident", "publish", id)
	ext := string(waitMail(t, dir, externalList, 1)[0])
	if !strings.Contains(ext, "A long header overflows a buffer.") || strings.Contains(ext, "INTERNALMARK") || strings.Contains(ext, "Initech") {
		t.Errorf("announcement:\n%s", ext)
	}
	s.stop(t)
}
