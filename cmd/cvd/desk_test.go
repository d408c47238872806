package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// deskWorld is a security team's setup as the README describes it: cvd
// initialised for example.org, a coordinator, downstreams in the roster,
// and the server run by the binary, with its clock shifted when a test
// needs days to pass.
type deskWorld struct {
	t        *testing.T
	dir, cfg string
	s        *server
	env      []string
	cora     *gpgtest.User
	project  string // the project key's fingerprint
	n        int

	mu    sync.Mutex
	plain map[string]string // outbox file -> decrypted text
}

func newDeskWorld(t *testing.T, roster ...*gpgtest.User) *deskWorld {
	return newDeskWorldInit(t, nil, roster...)
}

// newDeskWorldInit is newDeskWorld with extra flags for cvd init.
func newDeskWorldInit(t *testing.T, initFlags []string, roster ...*gpgtest.User) *deskWorld {
	dir, cfg := initDir(t, "example.org", initFlags...)
	w := &deskWorld{t: t, dir: dir, cfg: cfg, plain: map[string]string{}}
	w.cora = gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	addTeam(t, dir, cfg, w.cora)
	projectPub, err := os.ReadFile(filepath.Join(dir, "keys/project.pub.asc"))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range roster {
		u.Import(projectPub)
		name := strings.Fields(u.Name)[0]
		os.WriteFile(filepath.Join(dir, "keys", name+".asc"), u.Pub, 0o600)
		cvdtest.AppendConfig(t, cfg, fmt.Sprintf("[[embargo.roster]]\nname = %q\nemail = %q\nkey_file = \"keys/%s.asc\"\n", name, u.Email, name))
	}
	out, _ := w.cora.Run(nil, "--with-colons", "--list-keys", "security@example.org")
	m := regexp.MustCompile(`(?m)^fpr:+([0-9A-F]{40}):`).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no project key in cora's keyring")
	}
	w.project = m[1]
	return w
}

// start runs the server with the clock offset (a Go duration, "" for none).
func (w *deskWorld) start(offset string) {
	w.env = nil
	if offset != "" {
		w.env = []string{clockOffsetEnv + "=" + offset}
	}
	w.s = startCVD(w.t, w.dir, w.env, "--config", w.cfg)
}

// cli runs a cvd command with the world's configuration and clock.
func (w *deskWorld) cli(wantCode int, args ...string) string {
	w.t.Helper()
	code, out, errOut := runCVD(w.t, w.dir, w.env, append(args, "--config", w.cfg)...)
	if code != wantCode {
		w.t.Fatalf("cvd %v: exit %d, want %d\n%s%s", args, code, wantCode, out, errOut)
	}
	return out + errOut
}

// report mails a plain report from rita to security@ and returns the
// incident ID of its acknowledgement.
func (w *deskWorld) report(subject, text string) string {
	w.t.Helper()
	w.n++
	before := len(outboxMail(w.t, w.dir)["rita@reporter.example"])
	raw := fmt.Sprintf("From: Rita <rita@reporter.example>\r\nTo: security@example.org\r\nSubject: %s\r\nMessage-ID: <r%d@reporter.example>\r\n\r\n%s\r\n", subject, w.n, text)
	f := filepath.Join(w.t.TempDir(), "report.eml")
	os.WriteFile(f, []byte(raw), 0o600)
	if out, err := swaks(w.t, "--server", w.s.addr, "--from", "rita@reporter.example", "--to", "security@example.org", "--data", "@"+f); err != nil {
		w.t.Fatalf("swaks: %v\n%s", err, out)
	}
	ack := waitMail(w.t, w.dir, "rita@reporter.example", before+1)[before]
	id := regexp.MustCompile(`incident (\d{4}-\d{3})`).FindStringSubmatch(string(ack))
	if id == nil {
		w.t.Fatalf("acknowledgement without an incident ID:\n%s", ack)
	}
	return id[1]
}

// send mails body from u to the list, as a mail client does: a PGP/MIME
// message signed by u and encrypted to the project key. entity is the
// signed content's MIME header ("" for text/plain).
func (w *deskWorld) send(u *gpgtest.User, list, entity, body string) {
	w.t.Helper()
	w.n++
	if entity == "" {
		entity = "Content-Type: text/plain; charset=utf-8\r\n"
	}
	inner := entity + "\r\n" + strings.ReplaceAll(body, "\n", "\r\n")
	raw := gpgtest.PGPMIME(fmt.Sprintf("From: %s <%s>\r\nTo: %s\r\nSubject: ...\r\nMessage-ID: <desk%d@%s>\r\n", u.Name, u.Email, list, w.n, strings.Split(u.Email, "@")[1]),
		u.EncryptSign([]byte(inner), w.project))
	f := filepath.Join(w.t.TempDir(), "post.eml")
	os.WriteFile(f, []byte(raw), 0o600)
	if out, err := swaks(w.t, "--server", w.s.addr, "--from", u.Email, "--to", list, "--data", "@"+f); err != nil {
		w.t.Fatalf("swaks: %v\n%s", err, out)
	}
}

// texts decrypts, as u, every message to u in the outbox, oldest first.
func (w *deskWorld) texts(u *gpgtest.User) []string {
	w.t.Helper()
	var out []string
	for _, m := range cvdtest.Outbox(w.t, filepath.Join(w.dir, "outbox")) {
		if m.DeliveredTo != u.Email {
			continue
		}
		w.mu.Lock()
		p, ok := w.plain[m.File]
		w.mu.Unlock()
		if !ok {
			text, status, err := u.Decrypt(m.Raw)
			if err != nil || !strings.Contains(status, "VALIDSIG "+w.project) {
				w.t.Fatalf("%s cannot read %s as a message signed by the project key: %v\n%s", u.Email, m.File, err, status)
			}
			p = text
			w.mu.Lock()
			w.plain[m.File] = p
			w.mu.Unlock()
		}
		out = append(out, p)
	}
	return out
}

// waitText waits for a message to u, after the first skip, whose
// decrypted text contains want, and returns it.
func (w *deskWorld) waitText(u *gpgtest.User, skip int, want string) string {
	w.t.Helper()
	var got string
	waitFor(w.t, fmt.Sprintf("a message to %s containing %q", u.Email, want), func() bool {
		ts := w.texts(u)
		for _, p := range ts[min(skip, len(ts)):] {
			if strings.Contains(p, want) {
				got = p
				return true
			}
		}
		return false
	}, func() string {
		return strings.Join(w.texts(u), "\n-----\n") + "\n" + w.s.logs()
	})
	return got
}

// instructions returns the lines a notice tells its reader to send: the
// indented block after "exactly:".
func instructions(t *testing.T, notice string) string {
	t.Helper()
	m := regexp.MustCompile(`exactly:\r?\n\r?\n((?:    \S.*\r?\n)+)`).FindStringSubmatch(notice)
	if m == nil {
		t.Fatalf("the notice shows no lines to send:\n%s", notice)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(m[1]), "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	return strings.Join(lines, "\n") + "\n"
}

// TestNoticesFollowedLiterally is the downstreams and the coordinator
// doing exactly what the pre-notification, the reminder and the escalation
// tell them: each acknowledgement counts, and `show` says so at once. A
// reply on the list counts at once too; an x-ack after it is answered
// truthfully. A post of keyword lines only is not distributed. Publishing
// a new incident is refused with its real state.
func TestNoticesFollowedLiterally(t *testing.T) {
	deb := gpgtest.New(t, "Debian Security", "security@debian.example", "never")
	ubu := gpgtest.New(t, "Ubuntu Security", "security@ubuntu.example", "never")
	fed := gpgtest.New(t, "Fedora Security", "secalert@fedora.example", "never")
	w := newDeskWorld(t, deb, ubu, fed)
	w.start("")
	a := w.report("parser crash", "The parser crashes on empty input.")
	b := w.report("another thing", "Something else.")
	listA, listB := "security+"+a+"@example.org", "security+"+b+"@example.org"

	if out := w.cli(1, "incident", "publish", b); !strings.Contains(out, b+" is new, not confirmed") || strings.Contains(out, "triage") ||
		strings.Contains(out, "incident "+b+": ") {
		t.Errorf("publish of a new incident:\n%s", out)
	}
	w.cli(0, "incident", "confirm", a)
	w.cli(0, "incident", "set", a, "title", "Parser crash on empty input")
	w.cli(0, "incident", "set", a, "description", "An empty input file crashes the parser.")
	w.cli(0, "incident", "versions", a, "libexample", "--introduced", "1.0", "--fixed", "1.2.3")
	date := time.Now().UTC().Add(72 * time.Hour).Truncate(time.Hour)
	w.cli(0, "incident", "embargo", a, date.Format("2006-01-02T15:04Z"))
	w.cli(0, "incident", "notify", a)

	// Debian does what the pre-notification says.
	pre := w.waitText(deb, 0, "Upcoming")
	if !strings.Contains(pre, w.project) {
		t.Errorf("the pre-notification does not name the key to encrypt to (%s):\n%s", w.project, pre)
	}
	w.send(deb, listA, "", instructions(t, pre))
	if r := w.waitText(deb, 1, "Results of your commands"); !strings.Contains(r, "x-ack: "+a+": acknowledgement recorded") {
		t.Errorf("Debian's x-ack, as the pre-notification says:\n%s", r)
	}
	if out := w.cli(0, "incident", "show", a); !regexp.MustCompile(`Debian <security@debian.example> +notified .*, acknowledged .* \(x-ack\)`).MatchString(out) {
		t.Errorf("show after Debian's x-ack:\n%s", out)
	}

	// Fedora replies on the list: show has it at once.
	w.send(fed, listA, "", "We will be ready on the date.\n")
	if cp := w.waitText(deb, 2, "We will be ready on the date."); !strings.Contains(cp, "Reply:     to "+listA+", encrypted to the project key "+w.project) {
		t.Errorf("a member's copy does not say which key to encrypt a reply to:\n%s", cp)
	}
	if out := w.cli(0, "incident", "show", a); !regexp.MustCompile(`Fedora <secalert@fedora.example> +notified .*, acknowledged .* \(reply\)`).MatchString(out) {
		t.Errorf("show right after Fedora's reply on the list:\n%s", out)
	}
	w.send(fed, listA, "", instructions(t, w.waitText(fed, 0, "Upcoming")))
	if r := w.waitText(fed, 1, "Results of your commands"); !strings.Contains(r, "already acknowledged, by your post to the list") {
		t.Errorf("Fedora's x-ack after its reply:\n%s", r)
	}

	// Anyone can put Ubuntu's address in From: neither a plain post nor one
	// signed by another member's key is Ubuntu's acknowledgement.
	forged := fmt.Sprintf("From: Ubuntu Security <%s>\r\nTo: %s\r\nSubject: re\r\nMessage-ID: <forged@ubuntu.example>\r\n\r\nReceived, thanks.\r\n", ubu.Email, listA)
	f := filepath.Join(t.TempDir(), "forged.eml")
	os.WriteFile(f, []byte(forged), 0o600)
	if out, err := swaks(t, "--server", w.s.addr, "--from", "mallory@attacker.example", "--to", listA, "--data", "@"+f); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	w.n++
	signed := gpgtest.PGPMIME(fmt.Sprintf("From: Ubuntu Security <%s>\r\nTo: %s\r\nSubject: ...\r\nMessage-ID: <desk%d@ubuntu.example>\r\n", ubu.Email, listA, w.n),
		deb.EncryptSign([]byte("Content-Type: text/plain; charset=utf-8\r\n\r\nReceived, thanks.\r\n"), w.project))
	os.WriteFile(f, []byte(signed), 0o600)
	if out, err := swaks(t, "--server", w.s.addr, "--from", "mallory@attacker.example", "--to", listA, "--data", "@"+f); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	waitFor(t, "the two forged posts held", func() bool {
		code, out, _ := runCVD(t, w.dir, w.env, "incident", "thread", a, "--config", w.cfg)
		return code == 0 && strings.Count(out, "security@ubuntu.example  [held]") >= 2
	}, w.s.logs)
	if out := w.cli(0, "incident", "show", a); !regexp.MustCompile(`Ubuntu <security@ubuntu.example> +notified .*, silent`).MatchString(out) {
		t.Errorf("a post with Ubuntu's address in From, not signed by Ubuntu's key, counted as its acknowledgement:\n%s", out)
	}

	// A post of keyword lines only, in a multipart/mixed as mail clients
	// wrap text, is not distributed, and the sender is told so.
	debBefore := len(w.texts(deb))
	w.send(w.cora, listA, "Content-Type: multipart/mixed; boundary=\"b1\"\r\n",
		"--b1\nContent-Type: text/plain; charset=utf-8\n\nx-list: "+a+"\nx-status\n\n--b1--\n")
	r := w.waitText(w.cora, 0, "Results of your commands")
	if !strings.Contains(r, "x-status: "+a) || !strings.Contains(r, "it was not sent to the list") || strings.Contains(r, "was sent to the list") {
		t.Errorf("reply to a post of keyword lines only:\n%s", r)
	}
	coraBefore := len(w.texts(w.cora))
	w.send(w.cora, listA, "", "x-list: "+a+"\n\n")
	if r := w.waitText(w.cora, coraBefore, "Results of your commands"); !strings.Contains(r, "nothing to do") || !strings.Contains(r, "it was not sent to the list") {
		t.Errorf("reply to a post of the x-list line only:\n%s", r)
	}
	if got := w.texts(deb); len(got) != debBefore {
		t.Errorf("a post of keyword lines only was distributed:\n%s", got[len(got)-1])
	}
	w.s.stop(t)

	// Two days later: Ubuntu is reminded, the team is told that nobody
	// took incident b. Each does what its notice says.
	w.start("49h")
	rem := w.waitText(ubu, 1, "Reminder")
	w.send(ubu, listA, "", instructions(t, rem))
	if r := w.waitText(ubu, 2, "Results of your commands"); !strings.Contains(r, "acknowledgement recorded") {
		t.Errorf("Ubuntu's x-ack, as the reminder says:\n%s", r)
	}
	esc := w.waitText(w.cora, 0, "Report not acknowledged")
	w.send(w.cora, listB, "", instructions(t, esc))
	if r := w.waitText(w.cora, 0, "x-ack: "+b); !strings.Contains(r, b+" taken into triage") {
		t.Errorf("the coordinator's x-ack, as the escalation says:\n%s", r)
	}
	if out := w.cli(0, "incident", "show", b); !strings.Contains(out, b+": triage") {
		t.Errorf("show %s after the escalation was followed:\n%s", b, out)
	}
	if out := w.cli(0, "incident", "show", a); strings.Contains(out, ", silent") {
		t.Errorf("a downstream is still silent:\n%s", out)
	}
}
