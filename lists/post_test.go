package lists_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/internal/gpgtest"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/mailserver"
	"github.com/cvd-project/cvd/store"
)

const domain = "example.org"

// world is a running cvd: real SQLite, SMTP server on loopback, router,
// and people with their own GnuPG keys.
type world struct {
	t      *testing.T
	db     *store.DB
	svc    *lists.Service
	router *embargo.Router
	addr   string
	key    *crypto.Key
	keyPub []byte

	mu    sync.Mutex
	clock time.Time
}

type spoolIntake struct{ db *store.DB }

func (si spoolIntake) CheckRecipient(addr string) mailserver.Recipient {
	switch lists.ParseAddress(addr, domain).Kind {
	case lists.Security, lists.Announce:
		return mailserver.RecipientLocal
	case lists.Unknown:
		return mailserver.RecipientUnknown
	}
	return mailserver.RecipientForeign
}

func (si spoolIntake) Accept(ctx context.Context, m *mailserver.Message) (string, error) {
	id, err := si.db.Spool(ctx, store.Envelope{ReceivedAt: m.ReceivedAt, RemoteAddr: m.RemoteAddr, Helo: m.Helo, MailFrom: m.From, Rcpts: m.To}, m.Bytes())
	return strconv.FormatInt(id, 10), err
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "cvd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	priv, pub, err := crypto.GenerateKey("example.org security team", "security@"+domain, crypto.KindCurve25519)
	if err != nil {
		t.Fatal(err)
	}
	key, err := crypto.ParseKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, db: db, key: key, keyPub: pub, clock: time.Now().UTC().Add(time.Minute)}
	log := slog.New(slog.NewTextHandler(testLog{t}, nil))
	w.svc = &lists.Service{DB: db, Domain: domain, Key: key, Now: w.now, Log: log}
	w.router = &embargo.Router{DB: db, Domain: domain, Lists: w.svc, Log: log}
	srv := mailserver.NewSMTPServer(spoolIntake{db}, mailserver.SMTPOptions{Hostname: domain, MaxMessageBytes: 10 << 20,
		MaxRecipients: 10, MaxConnections: 10, MaxConnectionsPerIP: 10, ReadTimeout: time.Minute, WriteTimeout: time.Minute, Logger: log})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	w.addr = ln.Addr().String()
	return w
}

type testLog struct{ t *testing.T }

func (l testLog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func (w *world) now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.clock
}

func (w *world) advance(d time.Duration) {
	w.mu.Lock()
	w.clock = w.clock.Add(d)
	w.mu.Unlock()
}

// person makes a GnuPG user who knows the project key.
func (w *world) person(name, email, expire string) *gpgtest.User {
	u := gpgtest.New(w.t, name, email, expire)
	u.Import(w.keyPub)
	return u
}

func (w *world) join(list string, u *gpgtest.User, role string) *store.Member {
	w.t.Helper()
	m, err := w.svc.AddMember(context.Background(), list, lists.NewMember{Email: u.Email, Name: u.Name, Role: role, Key: u.Pub, Actor: "test"})
	if err != nil {
		w.t.Fatalf("add %s: %v", u.Email, err)
	}
	return m
}

// send mails raw over SMTP to rcpt and routes it.
func (w *world) send(from, rcpt, raw string) {
	w.t.Helper()
	c, err := smtp.Dial(w.addr)
	if err != nil {
		w.t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail(from, []string{rcpt}, strings.NewReader(raw)); err != nil {
		w.t.Fatalf("send: %v", err)
	}
	if _, _, err := w.router.RouteOnce(context.Background(), 0); err != nil {
		w.t.Fatal(err)
	}
}

type queued struct {
	rcpt, kind string
	raw        []byte
}

// queue returns everything queued, oldest first.
func (w *world) queue() []queued {
	w.t.Helper()
	ctx := context.Background()
	es, err := w.db.ListQueue(ctx, store.QueueFilter{Limit: 10000})
	if err != nil {
		w.t.Fatal(err)
	}
	sort.Slice(es, func(i, j int) bool { return es[i].ID < es[j].ID })
	var out []queued
	for _, e := range es {
		raw, err := w.db.QueuedRaw(ctx, e.MessageID)
		if err != nil {
			w.t.Fatal(err)
		}
		out = append(out, queued{rcpt: e.Rcpt, kind: e.Kind, raw: raw})
	}
	return out
}

func (w *world) posts(list string) []store.Post {
	w.t.Helper()
	ctx := context.Background()
	var l *store.List
	if err := w.db.Read(ctx, func(tx *sql.Tx) (err error) {
		l, err = store.ListByNameTx(ctx, tx, list)
		return err
	}); err != nil {
		w.t.Fatal(err)
	}
	ps, err := w.db.Posts(ctx, l.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	return ps
}

func TestIncidentListPost(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if _, err := w.svc.CreateList(ctx, "2026-001", store.ListIncident, "heap overflow"); err != nil {
		t.Fatal(err)
	}
	reporter := w.person("Rita Reporter", "rita@reporter.example", "never")
	coord := w.person("Cora Coordinator", "cora@example.org", "never")
	fixer := w.person("Finn Fixer", "finn@example.org", "never")
	debian := w.person("Debian Security", "team@security.debian.example", "never")
	stale := w.person("Stale Downstream", "stale@distro.example", "1d")
	for u, role := range map[*gpgtest.User]string{reporter: "reporter", coord: "coordinator", fixer: "fixer", debian: "downstream", stale: "downstream"} {
		w.join("2026-001", u, role)
	}
	// A day and a half later: the stale member's key has expired.
	w.advance(36 * time.Hour)

	secret := "SECRET-DETAIL: overflow in parse_header() at offset 0x41"
	inner := "Content-Type: text/plain; charset=utf-8\r\n\r\n" + secret + "\r\n"
	raw := gpgtest.PGPMIME("From: Rita Reporter <rita@reporter.example>\r\nTo: security+2026-001@example.org\r\nSubject: ...\r\nMessage-ID: <p1@reporter.example>\r\n",
		reporter.EncryptSign([]byte(inner), w.key.Fingerprint()))
	w.send("rita@reporter.example", "security+2026-001@example.org", raw)

	q := w.queue()
	byRcpt := map[string][]queued{}
	for _, m := range q {
		byRcpt[m.rcpt] = append(byRcpt[m.rcpt], m)
	}
	if len(byRcpt[reporter.Email]) != 0 {
		t.Errorf("the poster got their own post back")
	}
	for _, u := range []*gpgtest.User{coord, fixer, debian} {
		var post *queued
		for i := range byRcpt[u.Email] {
			if byRcpt[u.Email][i].kind == "post" {
				post = &byRcpt[u.Email][i]
			}
		}
		if post == nil {
			t.Errorf("%s got no copy; queue: %v", u.Email, byRcpt[u.Email])
			continue
		}
		if strings.Contains(string(post.raw), "SECRET-DETAIL") || !strings.Contains(string(post.raw), "Subject: [...]") {
			t.Errorf("copy for %s shows content outside the encryption", u.Email)
		}
		if !regexp.MustCompile(`(?m)^From: "Rita Reporter via 2026-001" <security\+2026-001@example\.org>\r?$`).Match(post.raw) {
			t.Errorf("copy for %s: From not rewritten:\n%s", u.Email, headerOf(post.raw))
		}
		for _, h := range []string{"List-Id: <2026-001.security.example.org>", "List-Post: <mailto:security+2026-001@example.org>", "Reply-To: security+2026-001@example.org", "Autocrypt: addr=security+2026-001@example.org"} {
			if !strings.Contains(string(post.raw), h) {
				t.Errorf("copy for %s lacks %q", u.Email, h)
			}
		}
		plain, status, err := u.Decrypt(post.raw)
		if err != nil || !gpgtest.HasStatus(status, "DECRYPTION_OKAY") {
			t.Errorf("%s cannot decrypt their copy: %v\n%s", u.Email, err, status)
			continue
		}
		if !gpgtest.HasStatus(status, "GOODSIG") || !strings.Contains(status, "VALIDSIG "+w.key.Fingerprint()) {
			t.Errorf("%s: copy not signed by the list key:\n%s", u.Email, status)
		}
		for _, want := range []string{secret, "From:      Rita Reporter <rita@reporter.example>", "Signature: good by " + reporter.Fpr, "Encrypted: yes"} {
			if !strings.Contains(plain, want) {
				t.Errorf("%s's decrypted copy lacks %q:\n%s", u.Email, want, plain)
			}
		}
		// Nobody else can read it.
		for _, other := range []*gpgtest.User{coord, fixer, debian, reporter} {
			if other == u {
				continue
			}
			if _, status, err := other.Decrypt(post.raw); err == nil || gpgtest.HasStatus(status, "DECRYPTION_OKAY") {
				t.Errorf("%s can decrypt %s's copy", other.Email, u.Email)
			}
		}
	}

	// The member whose key expired gets only a notice without content.
	st := byRcpt[stale.Email]
	if len(st) != 1 || st[0].kind != "missed" || strings.Contains(string(st[0].raw), "SECRET") || strings.Contains(string(st[0].raw), "parse_header") {
		t.Errorf("stale member got %+v", st)
	} else if !strings.Contains(string(st[0].raw), "You missed a message on incident 2026-001") {
		t.Errorf("missed notice:\n%s", st[0].raw)
	}
	// The coordinator is told, encrypted.
	told := false
	for _, m := range byRcpt[coord.Email] {
		if m.kind == "keyproblem" {
			plain, status, err := coord.Decrypt(m.raw)
			told = err == nil && gpgtest.HasStatus(status, "GOODSIG") && strings.Contains(plain, stale.Email)
		}
	}
	if !told {
		t.Error("coordinator not told (encrypted) about the stale member")
	}

	// An inline PGP post (armored text in a text/plain body) from the fixer.
	before0 := len(w.queue())
	inline := "From: Finn Fixer <finn@example.org>\r\nTo: security+2026-001@example.org\r\nSubject: fix\r\nMessage-ID: <inline1@example.org>\r\n" +
		"Content-Type: text/plain; charset=us-ascii\r\n\r\n" + strings.ReplaceAll(string(fixer.EncryptSign([]byte("INLINE-FIX: bounds check added\n"), w.key.Fingerprint())), "\n", "\r\n")
	w.send(fixer.Email, "security+2026-001@example.org", inline)
	for _, m := range w.queue()[before0:] {
		if m.rcpt == debian.Email && m.kind == "post" {
			plain, status, err := debian.Decrypt(m.raw)
			if err != nil || !gpgtest.HasStatus(status, "GOODSIG") || !strings.Contains(plain, "INLINE-FIX") || !strings.Contains(plain, "Signature: good by "+fixer.Fpr) {
				t.Errorf("inline post as read by debian: %v\n%s", err, plain)
			}
			before0 = -1
		}
	}
	if before0 != -1 {
		t.Error("inline PGP post not distributed to debian")
	}

	// The same Message-ID again is a duplicate: nothing more is sent.
	before := len(w.queue())
	w.send("rita@reporter.example", "security+2026-001@example.org", raw)
	if n := len(w.queue()); n != before {
		t.Errorf("duplicate post queued %d more messages", n-before)
	}
}

func headerOf(raw []byte) string {
	s := string(raw)
	if i := strings.Index(s, "\r\n\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

func TestNonMemberAndUnsignedPostsAreHeld(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.svc.CreateList(ctx, "2026-002", store.ListIncident, "")
	coord := w.person("Cora", "cora@example.org", "never")
	fixer := w.person("Finn", "finn@example.org", "never")
	w.join("2026-002", coord, "coordinator")
	w.join("2026-002", fixer, "fixer")
	outsider := w.person("Otto Outsider", "otto@upstream.example", "never")

	// A signed, encrypted post from someone who is not a member.
	raw := gpgtest.PGPMIME("From: Otto <otto@upstream.example>\r\nTo: security+2026-002@example.org\r\nSubject: ...\r\nMessage-ID: <o1@upstream.example>\r\n",
		outsider.EncryptSign([]byte("Content-Type: text/plain\r\n\r\nOUTSIDER-TEXT\r\n"), w.key.Fingerprint()))
	w.send("otto@upstream.example", "security+2026-002@example.org", raw)
	// A plain, unsigned post from a member.
	w.send(fixer.Email, "security+2026-002@example.org", "From: Finn <finn@example.org>\r\nSubject: plain words\r\nMessage-ID: <f1@example.org>\r\n\r\nUNSIGNED-TEXT\r\n")

	var coordCopies int
	receipts := map[string][]byte{}
	for _, m := range w.queue() {
		switch {
		case m.rcpt == coord.Email:
			coordCopies++
			plain, status, err := coord.Decrypt(m.raw)
			if err != nil || !gpgtest.HasStatus(status, "GOODSIG") {
				t.Errorf("held copy to coordinator: %v %s", err, status)
			}
			if !strings.Contains(plain, "HELD FOR COORDINATORS") || !strings.Contains(plain, "Subject: [held]") {
				t.Errorf("held copy not marked held:\n%s", plain)
			}
		case m.kind == "receipt":
			receipts[m.rcpt] = m.raw
		default:
			t.Errorf("unexpected %s to %s", m.kind, m.rcpt)
		}
	}
	if coordCopies != 2 {
		t.Errorf("coordinator got %d held copies, want 2", coordCopies)
	}
	for _, who := range []string{outsider.Email, fixer.Email} {
		r := string(receipts[who])
		if r == "" || strings.Contains(r, "OUTSIDER-TEXT") || strings.Contains(r, "UNSIGNED-TEXT") || strings.Contains(r, "held") {
			t.Errorf("receipt to %s: %q", who, r)
		}
	}
	ps := w.posts("2026-002")
	if len(ps) != 2 || ps[0].Status != "held" || ps[1].Status != "held" || ps[1].Signature != "unsigned" || ps[0].Signature != "unknown signer" {
		t.Fatalf("posts = %+v", ps)
	}

	// With unsigned posts allowed, a member's plain post goes out,
	// re-encrypted and marked as not verified.
	if err := w.svc.SetAllowUnsigned(ctx, "2026-002", true); err != nil {
		t.Fatal(err)
	}
	before := len(w.queue())
	w.send(fixer.Email, "security+2026-002@example.org", "From: Finn <finn@example.org>\r\nSubject: plain again\r\nMessage-ID: <f2@example.org>\r\n\r\nPLAIN-TWO\r\n")
	q := w.queue()[before:]
	if len(q) != 1 || q[0].rcpt != coord.Email || q[0].kind != "post" || strings.Contains(string(q[0].raw), "PLAIN-TWO") {
		t.Fatalf("unsigned post with the policy on: %+v", q)
	}
	plain, _, err := coord.Decrypt(q[0].raw)
	if err != nil || !strings.Contains(plain, "PLAIN-TWO") || !strings.Contains(plain, "sender not verified") || !strings.Contains(plain, "Encrypted: no") || !strings.Contains(plain, "Subject: plain again") {
		t.Errorf("re-encrypted plain post: %v\n%s", err, plain)
	}
}

func TestMemberWithoutKeyIsFrozenAfterRepeatedFailures(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.svc.CreateList(ctx, "2026-003", store.ListIncident, "")
	coord := w.person("Cora", "cora@example.org", "never")
	w.join("2026-003", coord, "coordinator")
	if _, err := w.svc.AddMember(ctx, "2026-003", lists.NewMember{Email: "nokey@distro.example", Role: "downstream"}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		inner := fmt.Sprintf("Content-Type: text/plain\r\n\r\nupdate %d\r\n", i)
		raw := gpgtest.PGPMIME(fmt.Sprintf("From: Cora <cora@example.org>\r\nSubject: ...\r\nMessage-ID: <c%d@example.org>\r\n", i), coord.EncryptSign([]byte(inner), w.key.Fingerprint()))
		w.send(coord.Email, "security+2026-003@example.org", raw)
	}
	missed := 0
	for _, m := range w.queue() {
		if m.rcpt == "nokey@distro.example" {
			missed++
			if m.kind != "missed" || strings.Contains(string(m.raw), "update") {
				t.Errorf("member without key got %s: %q", m.kind, m.raw)
			}
		}
	}
	if missed != lists.DefaultFreezeAfter {
		t.Errorf("member without key got %d notices, want %d then frozen", missed, lists.DefaultFreezeAfter)
	}
}

func TestDeliveryFailuresAreReportedWithoutLoops(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.svc.CreateList(ctx, "2026-004", store.ListIncident, "")
	coord := w.person("Cora", "cora@example.org", "never")
	deb := w.person("Debian", "security@debian.example", "never")
	w.join("2026-004", coord, "coordinator")
	w.join("2026-004", deb, "downstream")

	// A pre-notification bounced: the coordinators hear of it, encrypted.
	if err := w.svc.DeliveryFailed(ctx, "prenotify", "2026-004", "security@debian.example", "550 5.1.1 user unknown"); err != nil {
		t.Fatal(err)
	}
	got := w.lastTo(coord, "undelivered")
	if !strings.Contains(got, "prenotify message to security@debian.example") || !strings.Contains(got, "550 5.1.1") {
		t.Errorf("report:\n%s", got)
	}
	// The report failing is only logged: nothing more is queued.
	n := len(w.queue())
	for _, kind := range []string{"undelivered", "keyproblem", "missed"} {
		if err := w.svc.DeliveryFailed(ctx, kind, "2026-004", coord.Email, "550 no"); err != nil {
			t.Fatal(err)
		}
	}
	if len(w.queue()) != n {
		t.Errorf("a failed report caused another message")
	}
	// Three failed list copies freeze the member.
	for range 3 {
		if err := w.svc.DeliveryFailed(ctx, "post", "2026-004", deb.Email, "550 5.1.1 user unknown"); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.lastTo(coord, "keyproblem"); !strings.Contains(got, "now frozen") || strings.Contains(got, "asking for a valid key") {
		t.Errorf("freeze notice:\n%s", got)
	}
	// The only coordinator's own copy refused for its size: she is told
	// by a small notice all the same (her key is fine).
	before := len(w.queue())
	if err := w.svc.DeliveryFailed(ctx, "post", "2026-004", coord.Email, "552 5.3.4 message size exceeds fixed limit"); err != nil {
		t.Fatal(err)
	}
	if len(w.queue()) != before+1 {
		t.Fatalf("the coordinator was not told that her copy was refused")
	}
	if got := w.lastTo(coord, "keyproblem"); !strings.Contains(got, "5.3.4") || !strings.Contains(got, "smaller parts") {
		t.Errorf("size notice:\n%s", got)
	}
}
