package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// bindWorld is a running cvd with a configured team, for the attacks on
// who may speak for which list.
type bindWorld struct {
	t          *testing.T
	dir, cfg   string
	s          *server
	projectFpr string
	n          int
	team       []*gpgtest.User
}

func newBindWorld(t *testing.T, team ...*gpgtest.User) *bindWorld {
	dir, cfg := initDir(t, "example.org")
	return newBindWorldIn(t, dir, cfg, team...)
}

// newBindWorldIn is newBindWorld on a configuration made by initDir.
func newBindWorldIn(t *testing.T, dir, cfg string, team ...*gpgtest.User) *bindWorld {
	projectPub, _ := os.ReadFile(filepath.Join(dir, "keys/project.pub.asc"))
	w := &bindWorld{t: t, dir: dir, cfg: cfg, team: team}
	w.projectFpr = regexp.MustCompile(`[0-9A-F]{40}`).FindString(gpgFingerprints(t, filepath.Join(dir, "keys/project.pub.asc")))
	var conf strings.Builder
	for _, u := range team {
		u.Import(projectPub)
		file := "keys/" + strings.Split(u.Email, "@")[0] + ".asc"
		os.WriteFile(filepath.Join(dir, file), u.Pub, 0o600)
		conf.WriteString("\n[[embargo.team]]\nname = \"" + u.Name + "\"\nemail = \"" + u.Email + "\"\nkey_file = \"" + file + "\"\n")
	}
	cvdtest.AppendConfig(t, cfg, conf.String())
	w.s = startCVD(t, t.TempDir(), nil, "--config", cfg)
	return w
}

// send delivers raw with swaks, envelope sender from.
func (w *bindWorld) send(from, to string, raw []byte) {
	w.t.Helper()
	w.n++
	f := filepath.Join(w.t.TempDir(), "m.eml")
	os.WriteFile(f, raw, 0o600)
	if out, err := swaks(w.t, "--server", w.s.addr, "--from", from, "--to", to, "--data", "@"+f); err != nil {
		w.t.Fatalf("swaks: %v\n%s", err, out)
	}
}

// report sends a plain report to security@ and returns the incident ID
// from the acknowledgement.
func (w *bindWorld) report(from, msgID, body string) string {
	w.t.Helper()
	before := len(outboxMail(w.t, w.dir)[from])
	w.send(from, "security@example.org", []byte("From: <"+from+">\r\nTo: security@example.org\r\nSubject: bug\r\nMessage-ID: "+msgID+"\r\n\r\n"+body))
	ack := waitMail(w.t, w.dir, from, before+1)[before]
	id := regexp.MustCompile(`(?m)^Reply-To: security\+(\d{4}-\d{3})@`).FindSubmatch(ack)
	if id == nil {
		w.t.Fatalf("acknowledgement:\n%s", ack)
	}
	return string(id[1])
}

// plains returns what u can read of every message to u: the decrypted
// text of encrypted ones, the raw text of the others.
func (w *bindWorld) plains(u *gpgtest.User) []string {
	w.t.Helper()
	var out []string
	for _, m := range outboxMail(w.t, w.dir)[u.Email] {
		if !strings.Contains(string(m), "-----BEGIN PGP MESSAGE-----") {
			out = append(out, string(m))
			continue
		}
		plain, _, err := u.Decrypt(m)
		if err != nil {
			out = append(out, string(m))
			continue
		}
		out = append(out, plain)
	}
	return out
}

// waitPlain waits for a message to u whose readable text has every one of
// want, and returns it.
func (w *bindWorld) waitPlain(u *gpgtest.User, want ...string) string {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, p := range w.plains(u) {
			ok := true
			for _, s := range want {
				ok = ok && strings.Contains(p, s)
			}
			if ok {
				return p
			}
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("no message to %s with %q; they have:\n%s", u.Email, want, strings.Join(w.plains(u), "\n=====\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// signedPost is a PGP/MIME message from u, encrypted to the project key
// and signed; inner is the encrypted MIME entity.
func (w *bindWorld) signedPost(u *gpgtest.User, to, msgID, inner string) []byte {
	return []byte(gpgtest.PGPMIME("From: "+u.Name+" <"+u.Email+">\r\nTo: "+to+"\r\nSubject: ...\r\nMessage-ID: "+msgID+"\r\n",
		u.EncryptSign([]byte(inner), w.projectFpr)))
}

// moved is raw as an attacker resends it: another list, a new Message-ID.
func moved(raw []byte, fromList, toList, msgID string) []byte {
	s := strings.Replace(string(raw), "To: "+fromList, "To: "+toList, 1)
	s = regexp.MustCompile(`(?m)^Message-ID: <[^>]*>`).ReplaceAllString(s, "Message-ID: "+msgID)
	return []byte(s)
}

// TestCrossListMoveRefused is attack 2 of issue 12: Mallory reports
// something and so becomes a member of his own incident B. He resends a
// team coordinator's signed, encrypted post from incident A to B's list
// (and to the intake as a reply in B's thread), hoping cvd decrypts it and
// seals it to him. The post counts only on the list its signed part
// names: it is held, its content goes only to coordinators who are
// members of A, and Mallory receives nothing of it.
func TestCrossListMoveRefused(t *testing.T) {
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	carl := gpgtest.New(t, "Carl Coordinator", "carl@example.org", "never")
	mallory := gpgtest.New(t, "Mallory", "mallory@evil.example", "never")
	w := newBindWorld(t, cora, carl)
	projectPub, _ := os.ReadFile(filepath.Join(w.dir, "keys/project.pub.asc"))
	mallory.Import(projectPub)

	a := w.report("rita@reporter.example", "<rita1@reporter.example>", "The parser overflows.\r\n")
	b := w.report(mallory.Email, "<m1@evil.example>", "Something is wrong.\r\n\r\n"+strings.ReplaceAll(string(mallory.Pub), "\n", "\r\n"))
	listA, listB := "security+"+a+"@example.org", "security+"+b+"@example.org"
	// Max coordinates B only (a maintainer brought in for it): he must
	// not read A either.
	max := gpgtest.New(t, "Max Maintainer", "max@example.net", "never")
	max.Import(projectPub)
	keyFile := filepath.Join(t.TempDir(), "max.asc")
	os.WriteFile(keyFile, max.Pub, 0o600)
	if code, out, errOut := runCVD(t, w.dir, nil, "member", "add", b, max.Email, "--role", "coordinator", "--key", keyFile, "--config", w.cfg); code != 0 {
		t.Fatalf("member add: %d %s%s", code, out, errOut)
	}

	// Cora's client names the list in the encrypted, signed header
	// (RFC 9788); another post names it with the x-list line.
	protected := w.signedPost(cora, listA, "<cora1@example.org>",
		"Content-Type: text/plain; charset=utf-8; hp=\"cipher\"\r\nFrom: Cora Coordinator <cora@example.org>\r\nTo: "+listA+"\r\nSubject: plan\r\n\r\n"+
			"SECRET-ONE: the overflow is in parse_header(), fix in 1.4.2\r\n")
	w.send(cora.Email, listA, protected)
	w.waitPlain(carl, "SECRET-ONE", "List:      "+a)
	xlist := w.signedPost(cora, listA, "<cora2@example.org>", "Content-Type: text/plain; charset=utf-8\r\n\r\nx-list: "+a+"\r\n\r\nSECRET-TWO: exploit attached\r\n")
	w.send(cora.Email, listA, xlist)
	onA := w.waitPlain(carl, "SECRET-TWO", "List:      "+a)
	if strings.Contains(onA, "x-list:") || strings.Contains(onA, "HELD") {
		t.Errorf("a post naming its list with x-list is distributed without the line:\n%s", onA)
	}

	// Mallory moves both to his incident, and the first once more as a
	// reply to his own report through the intake.
	w.send(mallory.Email, listB, moved(protected, listA, listB, "<mv1@evil.example>"))
	w.send(mallory.Email, listB, moved(xlist, listA, listB, "<mv2@evil.example>"))
	intake := []byte(strings.Replace(string(moved(protected, listA, "security@example.org", "<mv3@evil.example>")),
		"\r\nMIME-Version:", "\r\nIn-Reply-To: <m1@evil.example>\r\nMIME-Version:", 1))
	w.send(mallory.Email, "security@example.org", intake)

	// Carl (a member of A) gets the held posts, with the reason; Cora is
	// told hers were held.
	for _, secret := range []string{"SECRET-ONE", "SECRET-TWO"} {
		held := w.waitPlain(carl, secret, "List:      "+b)
		if !strings.Contains(held, "HELD FOR COORDINATORS") || !strings.Contains(held, "Held:      its signed part names list "+a+", not this one") {
			t.Errorf("%s on %s is not held with its reason:\n%s", secret, b, held)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; n < 3 && time.Now().Before(deadline); {
		n = 0
		for _, p := range w.plains(carl) {
			if strings.Contains(p, "List:      "+b) && strings.Contains(p, "SECRET-") {
				n++
			}
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Mallory has his acknowledgement and nothing of A; Max is told a
	// post was held, without its content.
	for _, u := range []*gpgtest.User{mallory, max} {
		for _, p := range w.plains(u) {
			if strings.Contains(p, "SECRET-") {
				t.Errorf("%s reads A's content:\n%s", u.Email, p)
			}
		}
	}
	w.waitPlain(max, "was held", "names list "+a)

	w.waitPlain(cora, "was held", "names list "+a)

	// A team coordinator's post that names no list is held too: she is
	// on every incident, so it could be meant for any of them.
	w.send(cora.Email, listA, w.signedPost(cora, listA, "<cora4@example.org>", "Content-Type: text/plain; charset=utf-8\r\n\r\nSECRET-THREE\r\n"))
	if held := w.waitPlain(carl, "SECRET-THREE"); !strings.Contains(held, "Held:      its signed part names no list and the sender is a member of several") {
		t.Errorf("unnamed post by a member of several lists:\n%s", held)
	}

	// The team still talks to Mallory on his own list.
	legit := w.signedPost(cora, listB, "<cora3@example.org>",
		"Content-Type: text/plain; charset=utf-8; hp=\"cipher\"\r\nFrom: Cora Coordinator <cora@example.org>\r\nTo: "+listB+"\r\nSubject: q\r\n\r\nWhich version do you run?\r\n")
	w.send(cora.Email, listB, legit)
	if p := w.waitPlain(mallory, "Which version do you run?"); !strings.Contains(p, "Signature: good") {
		t.Errorf("Mallory's copy of a post to his list:\n%s", p)
	}
}

// TestCharsetReplayRefused is attack 3 of issue 12: a coordinator's old
// inline-PGP x-embargo, resent with charset=utf8 on the outer, unsigned
// Content-Type and a new Message-ID, must not move the date back: one use
// per signature.
func TestCharsetReplayRefused(t *testing.T) {
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	w := newBindWorld(t, cora)
	id := w.report("rita@reporter.example", "<rita1@reporter.example>", "The parser overflows.\r\n")
	list := "security+" + id + "@example.org"
	first := time.Now().UTC().Add(96 * time.Hour).Truncate(time.Hour)
	second := first.Add(48 * time.Hour)

	inline := func(msgID, charset, text string) []byte {
		armored := cora.EncryptSign([]byte(strings.ReplaceAll(text, "\n", "\r\n")), w.projectFpr)
		return []byte("From: Cora Coordinator <cora@example.org>\r\nTo: " + list + "\r\nSubject: ...\r\nMessage-ID: " + msgID + "\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=" + charset + "\r\n\r\n" + strings.ReplaceAll(string(armored), "\n", "\r\n"))
	}
	old := inline("<d1@example.org>", "utf-8", "x-list: "+id+"\nx-confirm\nx-embargo: "+first.Format("2006-01-02T15:04Z")+"\n")
	w.send(cora.Email, list, old)
	w.waitPlain(cora, "Results of your commands", "x-embargo: "+id+": public date")
	w.send(cora.Email, list, inline("<d2@example.org>", "utf-8", "x-list: "+id+"\nx-embargo: "+second.Format("2006-01-02T15:04Z")+"\n"))
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(w.show(id), second.Format("2006-01-02 15:04")) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}

	replay := strings.Replace(string(old), "charset=utf-8", "charset=utf8", 1)
	replay = strings.Replace(replay, "<d1@example.org>", "<d1-replay@evil.example>", 1)
	w.send("mallory@evil.example", list, []byte(replay))
	for n := 0; n < 3 && time.Now().Before(deadline.Add(30*time.Second)); time.Sleep(200 * time.Millisecond) {
		n = 0
		for _, p := range w.plains(cora) {
			if strings.Contains(p, "Results of your commands") {
				n++
			}
		}
	}
	if out := w.show(id); !strings.Contains(strings.SplitN(out, "\n", 2)[0], second.Format("2006-01-02 15:04")) || strings.Count(out, "  embargo  ") != 2 {
		t.Errorf("the replay moved the date (want %s):\n%s", second.Format("2006-01-02 15:04"), out)
	}
	w.waitPlain(cora, "refused: this signed message was used before")
}

func (w *bindWorld) show(id string) string {
	w.t.Helper()
	code, out, errOut := runCVD(w.t, w.dir, nil, "incident", "show", id, "--config", w.cfg)
	if code != 0 {
		w.t.Fatalf("incident show: %d %s%s", code, out, errOut)
	}
	return out
}

// TestUndecryptablePostNotice: a post encrypted to a key other than the
// list's is refused, and both the sender and the coordinators are told,
// without content.
func TestUndecryptablePostNotice(t *testing.T) {
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	ursula := gpgtest.New(t, "Ursula", "ursula@example.net", "never")
	w := newBindWorld(t, cora)
	id := w.report("rita@reporter.example", "<rita1@reporter.example>", "The parser overflows.\r\n")
	list := "security+" + id + "@example.org"
	// Encrypted to her own key by mistake.
	armored := ursula.EncryptSign([]byte("Content-Type: text/plain\r\n\r\nSECRET-U: details\r\n"), ursula.Fpr)
	w.send(ursula.Email, list, []byte(gpgtest.PGPMIME("From: Ursula <ursula@example.net>\r\nTo: "+list+"\r\nSubject: ...\r\nMessage-ID: <u1@example.net>\r\n", armored)))

	told := w.waitPlain(cora, "could not be decrypted", "ursula@example.net")
	if !strings.Contains(told, "not distributed") {
		t.Errorf("coordinators' notice:\n%s", told)
	}
	mails := outboxMail(t, w.dir)[ursula.Email]
	if len(mails) != 1 {
		t.Fatalf("Ursula got %d messages, want 1 notice", len(mails))
	}
	n := string(mails[0])
	if !strings.Contains(n, "could not be decrypted") || strings.Contains(n, "BEGIN PGP") || !strings.Contains(n, "Auto-Submitted: auto-replied") {
		t.Errorf("sender's notice:\n%s", n)
	}
}
