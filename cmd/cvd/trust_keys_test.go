package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// trustWorld is a cvd with a configured team, driven over SMTP by people
// with their own gpg homes.
type trustWorld struct {
	t          *testing.T
	dir, cfg   string
	s          *server
	projectFpr string
	projectPub []byte
}

// newTrustWorld initialises cvd for example.org with the given team
// coordinators, each with a key_file in cvd.toml.
func newTrustWorld(t *testing.T, team ...*gpgtest.User) *trustWorld {
	t.Helper()
	w := &trustWorld{t: t}
	w.dir, w.cfg = initDir(t, "example.org")
	project := filepath.Join(w.dir, "keys/project.pub.asc")
	w.projectPub, _ = os.ReadFile(project)
	w.projectFpr = regexp.MustCompile(`[0-9A-F]{40}`).FindString(gpgFingerprints(t, project))
	var conf strings.Builder
	for i, u := range team {
		file := fmt.Sprintf("keys/team%d.asc", i)
		if err := os.WriteFile(filepath.Join(w.dir, file), u.Pub, 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&conf, "\n[[embargo.team]]\nname = %q\nemail = %q\nkey_file = %q\n", u.Name, u.Email, file)
	}
	f, err := os.OpenFile(w.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(conf.String())
	f.Close()
	return w
}

func (w *trustWorld) person(name, email string) *gpgtest.User {
	u := gpgtest.New(w.t, name, email, "never")
	u.Import(w.projectPub)
	return u
}

func (w *trustWorld) start() {
	w.t.Helper()
	w.s = startCVD(w.t, w.dir, nil, "--config", w.cfg)
}

// send hands raw to cvd over SMTP with swaks, as a mail client would.
func (w *trustWorld) send(envFrom, to, raw string) {
	w.t.Helper()
	file := filepath.Join(w.t.TempDir(), "mail.eml")
	if err := os.WriteFile(file, []byte(raw), 0o600); err != nil {
		w.t.Fatal(err)
	}
	if out, err := swaks(w.t, "--server", w.s.addr, "--from", envFrom, "--to", to, "--data", "@"+file); err != nil {
		w.t.Fatalf("swaks: %v\n%s", err, out)
	}
	w.settle()
}

// settle waits until cvd routed every spooled message and delivered every
// queued one.
func (w *trustWorld) settle() {
	w.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, spool, _ := runCVD(w.t, w.dir, nil, "spool", "list", "--config", w.cfg)
		_, queue, _ := runCVD(w.t, w.dir, nil, "queue", "list", "--config", w.cfg)
		if !regexp.MustCompile(`(?m)\snew$`).MatchString(spool) && strings.Count(strings.TrimSpace(queue), "\n") == 0 {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("cvd did not settle:\n%s\n%s", spool, queue)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

func (w *trustWorld) cli(args ...string) string {
	w.t.Helper()
	code, out, errOut := runCVD(w.t, w.dir, nil, append(args, "--config", w.cfg)...)
	if code != 0 {
		w.t.Fatalf("cvd %v: exit %d\n%s%s", args, code, out, errOut)
	}
	return out
}

// mail is everything delivered to rcpt so far.
func (w *trustWorld) mail(rcpt string) [][]byte { return outboxMail(w.t, w.dir)[rcpt] }

// report sends a report to security@ and returns the incident it opened
// (the newest one); ackTo must have got a message.
func (w *trustWorld) report(envFrom, ackTo, raw string) string {
	w.t.Helper()
	before := len(w.mail(ackTo))
	w.send(envFrom, "security@example.org", raw)
	if got := len(w.mail(ackTo)); got <= before {
		w.t.Fatalf("%s got no acknowledgement", ackTo)
	}
	ids := regexp.MustCompile(`(?m)^(\d{4}-\d{3})\s`).FindAllStringSubmatch(w.cli("incident", "list"), -1)
	if ids == nil {
		w.t.Fatal("no incident opened")
	}
	return ids[len(ids)-1][1]
}

// signedPost is a PGP/MIME message from "from", signed by u and encrypted
// to the project key.
func (w *trustWorld) signedPost(u *gpgtest.User, from, to, msgID, body string) string {
	inner := "Content-Type: text/plain; charset=utf-8\r\n\r\n" + strings.ReplaceAll(body, "\n", "\r\n")
	armored := u.EncryptSign([]byte(inner), w.projectFpr)
	return gpgtest.PGPMIME("From: "+from+"\r\nTo: "+to+"\r\nSubject: ...\r\nMessage-ID: <"+msgID+">\r\nDate: "+
		time.Now().Format(time.RFC1123Z)+"\r\n", armored)
}

// withKey is a plain report with an armored public key attached.
func withKey(from, msgID, text string, key []byte) string {
	return "From: " + from + "\r\nTo: security@example.org\r\nSubject: security issue\r\nMessage-ID: <" + msgID + ">\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n" +
		"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n" +
		"--B\r\nContent-Type: application/pgp-keys; name=\"key.asc\"\r\nContent-Disposition: attachment; filename=\"key.asc\"\r\n\r\n" +
		strings.ReplaceAll(string(key), "\n", "\r\n") + "\r\n--B--\r\n"
}

// memberKey is the key fingerprint "cvd member list" shows for email on list.
func (w *trustWorld) memberKey(list, email string) string {
	w.t.Helper()
	out := w.cli("member", "list", list)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(email) + `\s+\S+\s+\S+\s+(\S+)`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return m[1]
}

// readable returns the plaintexts of the mail to u that u can decrypt.
func readable(u *gpgtest.User, msgs [][]byte) []string {
	var out []string
	for _, m := range msgs {
		if !bytes.Contains(m, []byte("-----BEGIN PGP MESSAGE-----")) {
			continue
		}
		if plain, _, err := u.Decrypt(m); err == nil {
			out = append(out, plain)
		}
	}
	return out
}

func anyContains(texts []string, s string) bool {
	for _, t := range texts {
		if strings.Contains(t, s) {
			return true
		}
	}
	return false
}

// TestForgedTeamPin: before the coordinator's first incident, an attacker
// reports "from" her address with his own key attached, to get it pinned
// for her; then he signs commands as her. The key in cvd.toml is
// authoritative: pinned at start, the attacker's key is dropped and the
// team told, his commands do not count, and reports are sealed to her real
// key only.
func TestForgedTeamPin(t *testing.T) {
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	w := newTrustWorld(t, cora)
	cora.Import(w.projectPub)
	fake := w.person("Cora Coordinator", "cora@example.org") // the attacker's key for her address
	rita := w.person("Rita Reporter", "rita@reporter.example")
	w.start()

	forged := w.report("mallory@evil.example", cora.Email,
		withKey("Cora Coordinator <cora@example.org>", "forged1@evil.example", "Please look at this.", fake.Pub))
	if got := w.memberKey(forged, cora.Email); got != cora.Fpr {
		t.Errorf("key of %s on %s is %q, want the configured %s", cora.Email, forged, got, cora.Fpr)
	}
	id := w.report(rita.Email, rita.Email, "From: Rita Reporter <rita@reporter.example>\r\nTo: security@example.org\r\n"+
		"Subject: overflow\r\nMessage-ID: <rita1@reporter.example>\r\n\r\nRITA-SECRET: the overflow is in parse_header().\r\n")
	if got := w.memberKey(id, cora.Email); got != cora.Fpr {
		t.Errorf("key of %s on %s is %q, want the configured %s", cora.Email, id, got, cora.Fpr)
	}

	// The attacker signs commands as the coordinator.
	w.send("cora@example.org", "security+"+id+"@example.org", w.signedPost(fake, "Cora Coordinator <cora@example.org>",
		"security+"+id+"@example.org", "attack1@evil.example",
		"x-list: "+id+"\nx-add-member: mallory@evil.example observer\nx-confirm\n"))
	if out := w.cli("member", "list", id); strings.Contains(out, "mallory@evil.example") {
		t.Errorf("the attacker's command as the coordinator was accepted:\n%s", out)
	}
	if out := w.cli("incident", "show", id); !strings.HasPrefix(out, id+": new") {
		t.Errorf("the attacker confirmed the incident as the coordinator:\n%s", out)
	}

	// Everything for the coordinator is sealed to her real key only.
	toCora := w.mail(cora.Email)
	if len(toCora) == 0 {
		t.Fatal("the coordinator got nothing")
	}
	if got := readable(fake, toCora); len(got) != 0 {
		t.Errorf("the attacker can read %d of the coordinator's messages, e.g.:\n%s", len(got), got[0])
	}
	real := readable(cora, toCora)
	if !anyContains(real, "RITA-SECRET") {
		t.Errorf("the coordinator cannot read Rita's report (%d of %d readable)", len(real), len(toCora))
	}
	if !anyContains(real, "conflicted with cvd.toml") || !anyContains(real, fake.Fpr) {
		t.Errorf("the team was not told of the conflicting key %s", fake.Fpr)
	}
	for rcpt, msgs := range outboxMail(t, w.dir) {
		for _, m := range msgs {
			if bytes.Contains(m, []byte("RITA-SECRET")) {
				t.Errorf("Rita's report left in clear to %s", rcpt)
			}
		}
	}
}

// TestCrossIncidentAddKey: the coordinator of one list uses x-add-key to
// replace a team coordinator's key (and a fixer's), then signs as her on
// another incident to add himself and get its backlog. A key set by mail
// counts on its list only, never for a configured address.
func TestCrossIncidentAddKey(t *testing.T) {
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	w := newTrustWorld(t, cora)
	cora.Import(w.projectPub)
	mallory := w.person("Mallory", "mallory@evil.example")
	fakeCora := w.person("Cora Coordinator", "cora@example.org")
	fred := w.person("Fred Fixer", "fred@example.org")
	fakeFred := w.person("Fred Fixer", "fred@example.org")
	rita := w.person("Rita Reporter", "rita@reporter.example")
	w.start()

	id := w.report(rita.Email, rita.Email, withKey("Rita Reporter <rita@reporter.example>", "rita1@reporter.example",
		"RITA-SECRET: the overflow is in parse_header().", rita.Pub))
	fredKey := filepath.Join(t.TempDir(), "fred.asc")
	os.WriteFile(fredKey, fred.Pub, 0o600)
	malloryKey := filepath.Join(t.TempDir(), "mallory.asc")
	os.WriteFile(malloryKey, mallory.Pub, 0o600)
	w.cli("member", "add", id, fred.Email, "--role", "fixer", "--key", fredKey)
	// Mallory coordinates a list of his own, where Cora and Fred are members.
	w.cli("list", "create", "side-project")
	w.cli("member", "add", "side-project", mallory.Email, "--role", "coordinator", "--key", malloryKey)
	w.cli("member", "add", "side-project", cora.Email, "--role", "fixer")
	w.cli("member", "add", "side-project", fred.Email, "--role", "fixer")

	w.send(mallory.Email, "security+side-project@example.org", w.signedPost(mallory, "Mallory <mallory@evil.example>",
		"security+side-project@example.org", "addkey1@evil.example",
		"x-list: side-project\nx-add-key\n\n"+string(fakeCora.Pub)+"\n"+string(fakeFred.Pub)))
	if got := w.memberKey("side-project", fred.Email); got != fakeFred.Fpr {
		t.Errorf("x-add-key on the coordinator's own list: fred's key there is %q, want %s", got, fakeFred.Fpr)
	}
	if got := w.memberKey("side-project", cora.Email); got != cora.Fpr {
		t.Errorf("x-add-key changed a configured team key on side-project: %q", got)
	}
	for _, who := range []*gpgtest.User{cora, fred} {
		if got := w.memberKey(id, who.Email); got != who.Fpr {
			t.Errorf("x-add-key on side-project changed %s's key on %s: %q, want %s", who.Email, id, got, who.Fpr)
		}
	}
	replies := readable(mallory, w.mail(mallory.Email))
	if !anyContains(replies, "cora@example.org: refused") {
		t.Errorf("Mallory was not told the team key cannot be changed by mail:\n%s", strings.Join(replies, "\n---\n"))
	}

	// Now he signs as Cora on Rita's incident: add himself, get the backlog.
	w.send("cora@example.org", "security+"+id+"@example.org", w.signedPost(fakeCora, "Cora Coordinator <cora@example.org>",
		"security+"+id+"@example.org", "attack2@evil.example",
		"x-list: "+id+"\nx-add-member: mallory@evil.example observer\nx-send-backlog: mallory@evil.example\n"))
	if out := w.cli("member", "list", id); strings.Contains(out, mallory.Email) {
		t.Errorf("Mallory got onto %s by signing as the coordinator:\n%s", id, out)
	}
	if anyContains(readable(mallory, w.mail(mallory.Email)), "RITA-SECRET") {
		t.Errorf("Mallory read Rita's report")
	}
	if len(readable(fakeCora, w.mail(cora.Email))) != 0 {
		t.Errorf("mail for Cora is sealed to the attacker's key")
	}
	// Cora's and Fred's copies on the incident stay readable by them.
	w.send(rita.Email, "security+"+id+"@example.org", w.signedPost(rita, "Rita Reporter <rita@reporter.example>",
		"security+"+id+"@example.org", "rita2@reporter.example", "RITA-FOLLOWUP: a second crash.\n"))
	for _, u := range []*gpgtest.User{cora, fred} {
		if !anyContains(readable(u, w.mail(u.Email)), "RITA-FOLLOWUP") {
			t.Errorf("%s cannot read Rita's follow-up", u.Email)
		}
	}
	for _, u := range []*gpgtest.User{mallory, fakeCora, fakeFred} {
		for _, to := range []string{mallory.Email, cora.Email, fred.Email} {
			if anyContains(readable(u, w.mail(to)), "RITA-") {
				t.Errorf("the attacker's key %s reads Rita's mail to %s", u.Fpr, to)
			}
		}
	}
}

// attachment decodes the base64 attachment of a decrypted quarantine.
func attachment(t *testing.T, plain string) []byte {
	t.Helper()
	m := regexp.MustCompile(`(?s)Content-Transfer-Encoding: base64\r?\n\r?\n(.*?)\r?\n--`).FindStringSubmatch(plain)
	if m == nil {
		t.Fatalf("no base64 attachment in:\n%.2000s", plain)
	}
	b, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUnprocessableReportReachesTeam: reports cvd cannot process (over the
// MIME part limit; encrypted to a key that is not the project's; over
// smtp.max_decrypted_size, lowered in cvd.toml) are
// acknowledged and must reach the team: sealed to the coordinators, raw
// message attached, with the reason; exactly once, also after a restart.
func TestUnprocessableReportReachesTeam(t *testing.T) {
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	w := newTrustWorld(t, cora)
	cora.Import(w.projectPub)
	rita := w.person("Rita Reporter", "rita@reporter.example")
	other := w.person("Someone Else", "else@example.net")
	rita.Import(other.Pub)
	cvdtest.SetConfig(t, w.cfg, "max_decrypted_size", `"2KiB"`)
	w.start()

	var many strings.Builder
	many.WriteString("From: Rita Reporter <rita@reporter.example>\r\nTo: security@example.org\r\nSubject: many parts\r\n" +
		"Message-ID: <parts1@reporter.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"P\"\r\n\r\n" +
		"--P\r\nContent-Type: text/plain\r\n\r\nPARTS-SECRET: crash log follows in many parts.\r\n")
	for i := range 600 {
		fmt.Fprintf(&many, "--P\r\nContent-Type: text/plain\r\n\r\nline %d\r\n", i)
	}
	many.WriteString("--P--\r\n")
	id1 := w.report(rita.Email, rita.Email, many.String())

	armored := rita.EncryptSign([]byte("Content-Type: text/plain\r\n\r\nWRONGKEY-SECRET\r\n"), other.Fpr)
	id2 := w.report(rita.Email, rita.Email, gpgtest.PGPMIME("From: Rita Reporter <rita@reporter.example>\r\nTo: security@example.org\r\n"+
		"Subject: ...\r\nMessage-ID: <wrongkey1@reporter.example>\r\n", armored))

	// Over the configured limit once decrypted.
	big := "Content-Type: text/plain\r\n\r\nBIG-SECRET\r\n" + strings.Repeat(fmt.Sprintf("%x\r\n", time.Now().UnixNano()), 400)
	armored = rita.EncryptSign([]byte(big), w.projectFpr)
	id3 := w.report(rita.Email, rita.Email, gpgtest.PGPMIME("From: Rita Reporter <rita@reporter.example>\r\nTo: security@example.org\r\n"+
		"Subject: ...\r\nMessage-ID: <big1@reporter.example>\r\n", armored))

	check := func() {
		t.Helper()
		if n := len(w.mail(rita.Email)); n != 3 {
			t.Errorf("Rita has %d messages, want one acknowledgement per report", n)
		}
		toCora := w.mail(cora.Email)
		for _, m := range toCora {
			if bytes.Contains(m, []byte("PARTS-SECRET")) || bytes.Contains(m, []byte("BIG-SECRET")) {
				t.Errorf("the report left in clear")
			}
		}
		plains := readable(cora, toCora)
		for _, c := range []struct{ id, reason, marker string }{
			{id1, "exceeds a limit", "PARTS-SECRET"},
			{id2, "not to the project key", "wrongkey1@reporter.example"},
			{id3, "exceeds a limit", "big1@reporter.example"},
		} {
			n := 0
			for _, p := range plains {
				if strings.Contains(p, "Report cvd could not process") && strings.Contains(p, c.id) {
					n++
					if !strings.Contains(p, c.reason) {
						t.Errorf("%s: the reason is missing:\n%.1500s", c.id, p)
					}
					if raw := attachment(t, p); !bytes.Contains(raw, []byte(c.marker)) {
						t.Errorf("%s: the attachment is not the message as received:\n%.500s", c.id, raw)
					}
				}
			}
			if n != 1 {
				t.Errorf("%s: the coordinator got %d copies of the unprocessed report, want 1", c.id, n)
			}
		}
	}
	check()
	w.s.stop(t)
	w.start()
	w.settle()
	check()
}

// TestReporterToldWhyKeyUnusable: a reporter whose attached key cannot be
// used (no encryption subkey; revoked) is told why in the acknowledgement.
func TestReporterToldWhyKeyUnusable(t *testing.T) {
	w := newTrustWorld(t)
	// A key that can sign but has no encryption subkey.
	signOnly := w.person("Other", "other@reporter.example")
	signOnly.Run(nil, "--passphrase", "", "--quick-gen-key", "Sam Signer <sam@reporter.example>", "ed25519", "sign", "never")
	samPub, _ := signOnly.Run(nil, "--armor", "--export", "sam@reporter.example")
	// A revoked key.
	rev := w.person("Rita Reporter", "rita@reporter.example")
	cert, err := os.ReadFile(filepath.Join(rev.Home, "openpgp-revocs.d", rev.Fpr+".rev"))
	if err != nil {
		t.Fatal(err)
	}
	rev.Import(bytes.Replace(cert, []byte(":-----BEGIN"), []byte("-----BEGIN"), 1))
	ritaPub, _ := rev.Run(nil, "--armor", "--export", rev.Email)
	w.start()

	for _, c := range []struct {
		email, key, want string
	}{
		{"sam@reporter.example", samPub, "has no valid encryption subkey"},
		{"rita@reporter.example", ritaPub, "is revoked"},
	} {
		w.report(c.email, c.email, withKey("Reporter <"+c.email+">", "r-"+c.email, "A bug.", []byte(c.key)))
		ack := w.mail(c.email)[0]
		if !strings.Contains(string(ack), "Your OpenPGP key cannot be used") || !strings.Contains(string(ack), c.want) {
			t.Errorf("acknowledgement to %s does not say why the key is unusable (%q):\n%s", c.email, c.want, ack)
		}
	}
}

// TestConfigKeyOverridesEarlierPin: a different key was pinned for an
// address before it was configured as a team coordinator (by an older cvd
// from a report, or by hand). When cvd starts, the configured key wins,
// the history keeps both, and the team is told.
func TestConfigKeyOverridesEarlierPin(t *testing.T) {
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	fake := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	w := newTrustWorld(t) // no team yet
	cora.Import(w.projectPub)
	fakeFile := filepath.Join(t.TempDir(), "fake.asc")
	os.WriteFile(fakeFile, fake.Pub, 0o600)
	w.cli("member", "key", cora.Email, "--key", fakeFile)

	os.WriteFile(filepath.Join(w.dir, "keys/cora.asc"), cora.Pub, 0o600)
	cvdtest.AppendConfig(t, w.cfg, "[[embargo.team]]\nname = \"Cora\"\nemail = \"cora@example.org\"\nkey_file = \"keys/cora.asc\"\n")
	w.start()
	w.settle()
	toCora := w.mail(cora.Email)
	if got := readable(cora, toCora); !anyContains(got, "conflicted with cvd.toml") || !anyContains(got, fake.Fpr) {
		t.Errorf("the team was not told that the configured key replaced %s (%d messages)", fake.Fpr, len(toCora))
	}
	if got := readable(fake, toCora); len(got) != 0 {
		t.Errorf("mail to the coordinator is sealed to the replaced key")
	}
	// The administrator cannot pin another key for a configured address.
	if code, _, errOut := runCVD(t, w.dir, nil, "member", "key", cora.Email, "--key", fakeFile, "--replace-key", "--config", w.cfg); code == 0 || !strings.Contains(errOut, "cvd.toml") {
		t.Errorf("member key for a configured address: exit %d %s", code, errOut)
	}
}
