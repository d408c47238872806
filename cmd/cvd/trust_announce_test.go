package main

import (
	"bytes"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/gpgtest"
)

// annWorld is a running cvd whose announce list has two coordinators with
// keys (Cora and Dan) and one subscriber (Sam, no key).
type annWorld struct {
	t          *testing.T
	dir, cfg   string
	s          *server
	cora, dan  *gpgtest.User
	projectFpr string
	n          int
}

const samAddr = "sam@users.example"

func newAnnWorld(t *testing.T) *annWorld {
	t.Helper()
	dir, cfg := initDir(t, "example.org")
	w := &annWorld{t: t, dir: dir, cfg: cfg}
	w.s = startCVD(t, t.TempDir(), nil, "--config", cfg)
	project := filepath.Join(dir, "keys/project.pub.asc")
	projectPub, _ := os.ReadFile(project)
	w.projectFpr = regexp.MustCompile(`[0-9A-F]{40}`).FindString(gpgFingerprints(t, project))
	w.cora = gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	w.dan = gpgtest.New(t, "Dan Deputy", "dan@example.org", "never")
	for _, u := range []*gpgtest.User{w.cora, w.dan} {
		u.Import(projectPub)
		keyFile := filepath.Join(t.TempDir(), "key.asc")
		os.WriteFile(keyFile, u.Pub, 0o600)
		w.cli(0, "member", "add", "announce", u.Email, "--role", "coordinator", "--key", keyFile, "--name", u.Name)
	}
	w.cli(0, "member", "add", "announce", samAddr, "--role", "subscriber")
	return w
}

func (w *annWorld) cli(want int, args ...string) string {
	w.t.Helper()
	code, out, errOut := runCVD(w.t, w.dir, nil, append(args, "--config", w.cfg)...)
	if code != want {
		w.t.Fatalf("cvd %v: exit %d, want %d\n%s%s", args, code, want, out, errOut)
	}
	return out + errOut
}

// send mails raw with swaks.
func (w *annWorld) send(envFrom, rcpt, raw string) {
	w.t.Helper()
	w.n++
	f := filepath.Join(w.t.TempDir(), "mail"+strconv.Itoa(w.n)+".eml")
	os.WriteFile(f, []byte(raw), 0o600)
	if out, err := swaks(w.t, "--server", w.s.addr, "--from", envFrom, "--to", rcpt, "--data", "@"+f); err != nil {
		w.t.Fatalf("swaks: %v\n%s", err, out)
	}
}

// announceLogRE matches complete log lines only (the log may be read while
// cvd writes it).
var announceLogRE = regexp.MustCompile(`msg="announce mail" .*?tag=(\S*) state=(\S+) reason=("(?:[^"\\]|\\.)*"|\S+)\n`)

// decisions waits until cvd has decided n messages to the announce list's
// addresses and returns "state: reason" for each, in order.
func (w *annWorld) decisions(n int) []string {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out []string
		for _, m := range announceLogRE.FindAllStringSubmatch(w.s.logs(), -1) {
			reason, err := strconv.Unquote(m[3])
			if err != nil {
				reason = m[3]
			}
			out = append(out, m[2]+": "+reason)
		}
		if len(out) >= n {
			return out
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%d announce decisions, want %d:\n%s", len(out), n, w.s.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// drained waits until the queue has nothing left to send.
func (w *annWorld) drained() {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := w.cli(0, "queue", "list", "--all")
		if !regexp.MustCompile(` (queued|sending|deferred) `).MatchString(out) {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("queue not drained:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clearSignedMIME is an RFC 3156 multipart/signed message by u over the
// MIME entity inner, as mail clients send it.
func clearSignedMIME(u *gpgtest.User, header, inner string) string {
	sig, _ := u.Run([]byte(inner), "--armor", "--detach-sign", "--local-user", u.Fpr, "--digest-algo", "SHA256")
	return header + "MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"; boundary=\"SS\"\r\n\r\n" +
		"--SS\r\n" + inner + "\r\n--SS\r\nContent-Type: application/pgp-signature; name=\"signature.asc\"\r\n\r\n" +
		strings.ReplaceAll(sig, "\n", "\r\n") + "\r\n--SS--\r\n"
}

// inlineSigned is a text/plain message holding text clear-signed by u
// (gpg --clearsign).
func inlineSigned(u *gpgtest.User, header, text string) string {
	out, _ := u.Run([]byte(text), "--clearsign", "--local-user", u.Fpr)
	return header + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + strings.ReplaceAll(out, "\n", "\r\n")
}

// withHeader replaces the header fields named in fields (name -> value)
// of raw, keeping the body byte for byte: what someone who captured a
// message does before resending it.
func withHeader(raw string, fields map[string]string) string {
	head, body, _ := strings.Cut(raw, "\r\n\r\n")
	var out []string
	for _, l := range strings.Split(head, "\r\n") {
		k, _, _ := strings.Cut(l, ":")
		if _, ok := fields[k]; ok {
			continue
		}
		out = append(out, l)
	}
	for k, v := range fields {
		out = append(out, k+": "+v)
	}
	return strings.Join(out, "\r\n") + "\r\n\r\n" + body
}

// notices decrypts what u received sealed and returns the plaintexts.
func (w *annWorld) notices(u *gpgtest.User) []string {
	w.t.Helper()
	var out []string
	for _, m := range outboxMail(w.t, w.dir)[u.Email] {
		if !bytes.Contains(m, []byte("-----BEGIN PGP MESSAGE-----")) {
			continue
		}
		plain, _, err := u.Decrypt(m)
		if err != nil {
			w.t.Fatalf("%s cannot decrypt a message: %v", u.Email, err)
		}
		out = append(out, plain)
	}
	return out
}

// noneContains fails when any message in the outbox carries one of the
// markers in clear.
func (w *annWorld) noneContains(markers ...string) {
	w.t.Helper()
	for rcpt, msgs := range outboxMail(w.t, w.dir) {
		for _, m := range msgs {
			for _, mk := range markers {
				if bytes.Contains(m, []byte(mk)) {
					w.t.Errorf("%s received %q in clear:\n%.1500s", rcpt, mk, m)
				}
			}
		}
	}
}

// TestAnnounceNeverPublishesCapturedEncryptedMail is the announce@ oracle:
// an announce coordinator's signed and encrypted post to an incident list,
// captured and resent to announce@ with a forged From and a new
// Message-ID, must not reach a subscriber; cvd does not even decrypt it.
// A coordinator's own encrypted mail to announce@ is refused too, and the
// coordinators are told why without its content.
func TestAnnounceNeverPublishesCapturedEncryptedMail(t *testing.T) {
	w := newAnnWorld(t)
	w.cli(0, "list", "create", "parser-bug")
	w.cli(0, "member", "add", "parser-bug", w.cora.Email, "--role", "coordinator")

	const secret = "EMBARGOED-SECRET-4711"
	post := gpgtest.PGPMIME("From: Cora Coordinator <cora@example.org>\r\nTo: security+parser-bug@example.org\r\nSubject: ...\r\n"+
		"Message-ID: <cora-post-1@example.org>\r\n",
		w.cora.EncryptSign([]byte("Subject: heap overflow details\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
			secret+": the overflow is in parse_header().\r\n"), w.projectFpr))
	w.send(w.cora.Email, "security+parser-bug@example.org", post)

	// Mallory captured the post on its way and resends it to announce@.
	replay := withHeader(post, map[string]string{"From": "Mallory <mallory@evil.example>", "To": "announce@example.org",
		"Message-ID": "<fresh-1@evil.example>"})
	w.send("mallory@evil.example", "announce@example.org", replay)

	// Cora herself sends an encrypted announcement (a mistake).
	const own = "OWN-ENCRYPTED-0815"
	w.send(w.cora.Email, "announce@example.org", gpgtest.PGPMIME("From: Cora Coordinator <cora@example.org>\r\nTo: announce@example.org\r\n"+
		"Subject: ...\r\nMessage-ID: <cora-ann-enc@example.org>\r\n",
		w.cora.EncryptSign([]byte("Subject: advisory\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nx-list: announce\r\n\r\n"+own+"\r\n"), w.projectFpr)))

	got := w.decisions(2)
	for i, d := range got[:2] {
		if !strings.HasPrefix(d, "failed: ") || !strings.Contains(d, "encrypted") {
			t.Errorf("encrypted mail %d to announce@: %s", i+1, d)
		}
	}

	// A proper announcement still goes out, once, to Sam: the mail above
	// was queued before it, if at all.
	w.send(w.cora.Email, "announce@example.org", inlineSigned(w.cora, "From: Cora Coordinator <cora@example.org>\r\nTo: announce@example.org\r\n"+
		"Subject: [SECURITY] libexample 1.2.4\r\nMessage-ID: <cora-ann-1@example.org>\r\n", "x-list: announce\n\nPUBLIC-ADVISORY-1: upgrade.\n"))
	waitMail(t, w.dir, samAddr, 1)
	w.drained()
	sam := outboxMail(t, w.dir)[samAddr]
	if len(sam) != 1 || !bytes.Contains(sam[0], []byte("PUBLIC-ADVISORY-1")) {
		t.Errorf("Sam has %d messages, want only the proper announcement", len(sam))
	}
	w.noneContains(secret, own)
	if !strings.Contains(w.s.logs(), "cvd ready") || strings.Contains(w.s.logs(), secret) || strings.Contains(w.s.logs(), own) {
		t.Errorf("the log shows the content")
	}

	// The coordinators learn that Cora's encrypted mail was refused, and
	// why, without its content.
	for _, u := range []*gpgtest.User{w.cora, w.dan} {
		found := false
		for _, n := range w.notices(u) {
			if strings.Contains(n, secret) || strings.Contains(n, own) {
				t.Errorf("%s's notice carries the content:\n%s", u.Email, n)
			}
			if strings.Contains(n, "not published") && strings.Contains(n, "encrypted") && strings.Contains(n, "cora@example.org") {
				found = true
			}
		}
		if !found {
			t.Errorf("%s was not told that Cora's encrypted mail was refused", u.Email)
		}
	}
	w.s.stop(t)
}

// TestAnnounceCoordinatorPostRules: a coordinator's announcement counts
// once, only from the signer's own address, only when its signed part
// names announce@; everything else is refused with a notice to the
// coordinators.
func TestAnnounceCoordinatorPostRules(t *testing.T) {
	w := newAnnWorld(t)
	coraFrom := "From: Cora Coordinator <cora@example.org>\r\n"

	// RFC 9788: the signed part's own To names announce@.
	valid := clearSignedMIME(w.cora, coraFrom+"To: announce@example.org\r\nSubject: [SECURITY] libexample 1.2.4\r\nMessage-ID: <ann-1@example.org>\r\n",
		"Content-Type: text/plain; charset=utf-8; hp=\"clear\"\r\n"+coraFrom+"To: announce@example.org\r\nSubject: [SECURITY] libexample 1.2.4\r\n\r\n"+
			"ADVISORY-ONE: upgrade to 1.2.4.\r\n")
	w.send(w.cora.Email, "announce@example.org", valid)
	first := waitMail(t, w.dir, samAddr, 1)[0]
	if !bytes.Contains(first, []byte("ADVISORY-ONE")) || !strings.Contains(string(first), "[SECURITY] libexample 1.2.4") {
		t.Fatalf("Sam's announcement:\n%s", first)
	}
	if bytes.Contains(first, []byte("cora@example.org")) {
		t.Errorf("the announcement carries the poster's own header fields:\n%s", first)
	}

	refused := []struct{ name, marker, raw, reason string }{
		{"replay of the announcement", "ADVISORY-ONE", withHeader(valid, map[string]string{"Message-ID": "<ann-1-again@evil.example>"}), "used before"},
		{"signed part names an incident list", "OTHER-LIST-POST", clearSignedMIME(w.cora, coraFrom+"To: announce@example.org\r\nSubject: ...\r\nMessage-ID: <p2@example.org>\r\n",
			"Content-Type: text/plain; charset=utf-8; hp=\"clear\"\r\n"+coraFrom+"To: security+2026-001@example.org\r\nSubject: fix\r\n\r\nOTHER-LIST-POST\r\n"), "not announce@example.org"},
		{"x-list names an incident list", "XLIST-OTHER", inlineSigned(w.cora, coraFrom+"To: announce@example.org\r\nSubject: s\r\nMessage-ID: <p3@example.org>\r\n",
			"x-list: 2026-001\n\nXLIST-OTHER\n"), "another list"},
		{"no list named", "NO-LIST-NAMED", inlineSigned(w.cora, coraFrom+"To: announce@example.org\r\nSubject: s\r\nMessage-ID: <p4@example.org>\r\n",
			"NO-LIST-NAMED\n"), "x-list: announce"},
		{"From is not the signer", "WRONG-FROM", inlineSigned(w.cora, "From: Dan Deputy <dan@example.org>\r\nTo: announce@example.org\r\nSubject: s\r\nMessage-ID: <p5@example.org>\r\n",
			"x-list: announce\n\nWRONG-FROM\n"), "not the address"},
		{"signed by a stranger", "STRANGER", inlineSigned(gpgtest.New(t, "Mallory", "mallory@evil.example", "never"),
			"From: Mallory <mallory@evil.example>\r\nTo: announce@example.org\r\nSubject: s\r\nMessage-ID: <p6@evil.example>\r\n",
			"x-list: announce\n\nSTRANGER\n"), "not signed by an announce coordinator"},
	}
	for i, r := range refused {
		w.send("someone@elsewhere.example", "announce@example.org", r.raw)
		d := w.decisions(2 + i)[1+i]
		if !strings.HasPrefix(d, "failed: ") || !strings.Contains(d, r.reason) {
			t.Errorf("%s: %s", r.name, d)
		}
	}

	// The next proper announcement (inline, x-list line) goes out.
	w.send(w.cora.Email, "announce@example.org", inlineSigned(w.cora, coraFrom+"To: announce@example.org\r\nSubject: [SECURITY] libexample 1.2.5\r\n"+
		"Message-ID: <ann-2@example.org>\r\n", "x-list: announce\n\nADVISORY-TWO: upgrade to 1.2.5.\n"))
	waitMail(t, w.dir, samAddr, 2)
	w.drained()
	sam := outboxMail(t, w.dir)[samAddr]
	if len(sam) != 2 || !bytes.Contains(sam[0], []byte("ADVISORY-ONE")) && !bytes.Contains(sam[1], []byte("ADVISORY-ONE")) ||
		!bytes.Contains(sam[0], []byte("ADVISORY-TWO")) && !bytes.Contains(sam[1], []byte("ADVISORY-TWO")) {
		t.Errorf("Sam has %d messages, want the two announcements once each", len(sam))
	}
	for _, m := range sam {
		if bytes.Contains(m, []byte("x-list:")) {
			t.Errorf("the x-list line was published:\n%s", m)
		}
	}
	w.noneContains("OTHER-LIST-POST", "XLIST-OTHER", "NO-LIST-NAMED", "WRONG-FROM", "STRANGER")

	// Five refusals came from a coordinator's address or key; the
	// stranger's did not: the coordinators are told of those five.
	var told []string
	for _, n := range w.notices(w.dan) {
		if strings.Contains(n, "not published") {
			told = append(told, n)
		}
		for _, r := range refused {
			if r.marker != "ADVISORY-ONE" && strings.Contains(n, r.marker) {
				t.Errorf("a notice carries content %q:\n%s", r.marker, n)
			}
		}
	}
	if len(told) != 5 {
		t.Errorf("Dan got %d notices of refused mail, want 5:\n%s", len(told), strings.Join(told, "\n---\n"))
	}
	w.s.stop(t)
}

// TestOneClickUnsubscribeKeepsCoordinator: the one-click link in a
// coordinator's copy of an announcement (anyone it is forwarded to has
// it) and a mail unsubscription remove subscribers only.
func TestOneClickUnsubscribeKeepsCoordinator(t *testing.T) {
	w := newAnnWorld(t)
	base := "http://" + w.s.webAddr(t)
	w.send(w.cora.Email, "announce@example.org", inlineSigned(w.cora, "From: Cora Coordinator <cora@example.org>\r\nTo: announce@example.org\r\n"+
		"Subject: [SECURITY] libexample 1.2.4\r\nMessage-ID: <ann-1@example.org>\r\n", "x-list: announce\n\nUpgrade to 1.2.4.\n"))
	waitMail(t, w.dir, samAddr, 1)
	linkRE := regexp.MustCompile(`List-Unsubscribe: <https://example\.org(/unsubscribe/[A-Za-z0-9_-]+)>`)
	var coraLink []string
	for _, m := range waitMail(t, w.dir, w.cora.Email, 1) {
		if l := linkRE.FindSubmatch(m); l != nil {
			coraLink = append(coraLink, string(l[1]))
		}
	}
	samLink := linkRE.FindSubmatch(outboxMail(t, w.dir)[samAddr][0])
	if samLink == nil {
		t.Fatalf("Sam's copy has no one-click link")
	}
	oneClick := func(path string) {
		t.Helper()
		resp, err := http.PostForm(base+path, url.Values{"List-Unsubscribe": {"One-Click"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("POST %s: %d", path, resp.StatusCode)
		}
	}
	for _, l := range coraLink {
		oneClick(l)
	}
	oneClick(string(samLink[1]))
	members := w.cli(0, "member", "list", "announce")
	if !regexp.MustCompile(`cora@example\.org +coordinator +active`).MatchString(members) {
		t.Errorf("the one-click link in Cora's copy removed her (links %v):\n%s", coraLink, members)
	}
	if !regexp.MustCompile(`sam@users\.example +subscriber +removed`).MatchString(members) {
		t.Errorf("Sam's one-click link did not unsubscribe him:\n%s", members)
	}

	// By mail: Dan asks to unsubscribe and confirms.
	w.send(w.dan.Email, "announce+unsubscribe@example.org", "From: Dan Deputy <dan@example.org>\r\nTo: announce+unsubscribe@example.org\r\nSubject: unsubscribe\r\n\r\n")
	w.decisions(2)
	w.drained()
	for _, m := range outboxMail(t, w.dir)[w.dan.Email] {
		if c := regexp.MustCompile(`(?m)^Reply-To: (announce\+confirm-\S+@example\.org)\r?$`).FindSubmatch(m); c != nil {
			w.send(w.dan.Email, string(c[1]), "From: Dan Deputy <dan@example.org>\r\nSubject: Re: confirm\r\n\r\n")
			w.decisions(3)
		}
	}
	if members := w.cli(0, "member", "list", "announce"); !regexp.MustCompile(`dan@example\.org +coordinator +active`).MatchString(members) {
		t.Errorf("unsubscribing by mail removed a coordinator:\n%s", members)
	}
	w.s.stop(t)
}

// TestConfirmWithoutPrivacyKeepsIt: "incident confirm ID" without
// --privacy never turns a public incident private.
func TestConfirmWithoutPrivacyKeepsIt(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	w := &annWorld{t: t, dir: dir, cfg: cfg, s: s}
	pub := report(t, s, dir, "rita@reporter.example", "parser crash", 1)
	priv := report(t, s, dir, "rita@reporter.example", "another bug", 2)
	w.cli(0, "incident", "confirm", pub, "--privacy", "public")
	w.cli(0, "incident", "confirm", pub)
	w.cli(0, "incident", "confirm", priv)
	list := w.cli(0, "incident", "list")
	if !regexp.MustCompile(pub + ` +confirmed +public `).MatchString(list) {
		t.Errorf("confirm without --privacy changed a public incident:\n%s", list)
	}
	if !regexp.MustCompile(priv + ` +confirmed +private `).MatchString(list) {
		t.Errorf("a new incident confirmed without --privacy is not private:\n%s", list)
	}
	w.cli(0, "incident", "confirm", pub, "--privacy", "private")
	if list := w.cli(0, "incident", "list"); !regexp.MustCompile(pub + ` +confirmed +private `).MatchString(list) {
		t.Errorf("an explicit --privacy private was not applied:\n%s", list)
	}
	s.stop(t)
}
