package embargo_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/internal/gpgtest"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/publish"
	"github.com/cvd-project/cvd/store"
)

const domain = "example.org"

// clock is an injected clock: tests move it, nothing sleeps.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// world is cvd without SMTP: a database, the lists service, the desk and
// the router, with people who have their own GnuPG keys.
type world struct {
	t    *testing.T
	path string
	db   *store.DB
	// closeDB closes db once (restarts close it before the cleanup does).
	closeDB func() error
	clock   *clock
	key     *crypto.Key
	keyPub  []byte
	svc     *lists.Service
	desk    *embargo.Desk
	router  *embargo.Router
	team    []embargo.Person
	roster  []embargo.Person
	log     *slog.Logger
}

type testLog struct{ t *testing.T }

func (l testLog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func newWorld(t *testing.T) *world {
	t.Helper()
	priv, pub, err := crypto.GenerateKey("example.org security team", "security@"+domain, crypto.KindCurve25519)
	if err != nil {
		t.Fatal(err)
	}
	key, err := crypto.ParseKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	// The clock starts half past the hour, 30 to 90 minutes ahead of the
	// real time: keys and signatures that gpg makes later in the test, at
	// the real time, must not be from the clock's future (under load a
	// test can take minutes), and dates a test rounds to the hour are
	// never the clock's own time, whenever the test runs.
	w := &world{t: t, path: filepath.Join(t.TempDir(), "cvd.db"), key: key, keyPub: pub,
		clock: &clock{t: time.Now().UTC().Truncate(time.Hour).Add(90 * time.Minute)}, log: slog.New(slog.NewTextHandler(testLog{t}, nil))}
	w.open()
	return w
}

// open opens the database and builds the services: a (re)start of cvd.
func (w *world) open() {
	w.t.Helper()
	db, err := store.Open(context.Background(), w.path)
	if err != nil {
		w.t.Fatal(err)
	}
	closed := false
	w.closeDB = func() error {
		if closed {
			return nil
		}
		closed = true
		return db.Close()
	}
	w.t.Cleanup(func() { w.closeDB() })
	w.db = db
	w.svc = &lists.Service{DB: db, Domain: domain, Key: w.key, Now: w.clock.Now, Log: w.log}
	w.desk = &embargo.Desk{DB: db, Lists: w.svc, Domain: domain, Key: w.key, Policy: embargo.DefaultPolicy(),
		Team: w.team, Roster: w.roster, Announce: "announce@" + domain, External: []string{"oss-security@lists.example.net"},
		Project: publish.Project{Name: "libexample", Vendor: "The Example Project", Domain: domain},
		// These tests send from made-up domains without DNS: the
		// authentication rule has tests of its own through the binary.
		AcknowledgeUnauthenticated: true,
		Now:                        w.clock.Now, Log: w.log}
	w.svc.Keywords = w.desk.HandleKeyword
	w.router = &embargo.Router{DB: db, Domain: domain, Lists: w.svc, Intake: w.desk.Intake, Log: w.log}
	if err := w.svc.EnsureAnnounceList(context.Background()); err != nil {
		w.t.Fatal(err)
	}
}

// restart closes the database and opens it again.
func (w *world) restart() {
	w.t.Helper()
	if err := w.closeDB(); err != nil {
		w.t.Fatal(err)
	}
	w.open()
}

func (w *world) person(name, email string) *gpgtest.User {
	u := gpgtest.New(w.t, name, email, "never")
	u.Import(w.keyPub)
	return u
}

func (w *world) addTeam(u *gpgtest.User) {
	w.team = append(w.team, embargo.Person{Name: u.Name, Email: u.Email, Key: u.Pub})
	w.desk.Team = w.team
}

func (w *world) addRoster(u *gpgtest.User) {
	w.roster = append(w.roster, embargo.Person{Name: u.Name, Email: u.Email, Key: u.Pub})
	w.desk.Roster = w.roster
}

// deliver spools raw as received from mailFrom for rcpt and routes it.
func (w *world) deliver(mailFrom, rcpt, raw string) {
	w.t.Helper()
	ctx := context.Background()
	if _, err := w.db.Spool(ctx, store.Envelope{ReceivedAt: w.clock.Now(), RemoteAddr: "192.0.2.1:1234", Helo: "client.example",
		MailFrom: mailFrom, Rcpts: []string{rcpt}}, []byte(strings.ReplaceAll(raw, "\r\n", "\n"))); err != nil {
		w.t.Fatal(err)
	}
	if _, _, err := w.router.RouteOnce(ctx, 0); err != nil {
		w.t.Fatal(err)
	}
}

type queued struct {
	id         int64
	rcpt, kind string
	ref        string
	raw        []byte
}

// queue returns everything queued, oldest first.
func (w *world) queue() []queued {
	w.t.Helper()
	ctx := context.Background()
	es, err := w.db.ListQueue(ctx, store.QueueFilter{Limit: 100000})
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
		out = append(out, queued{id: e.ID, rcpt: e.Rcpt, kind: e.Kind, ref: e.Ref, raw: raw})
	}
	return out
}

// since returns the queue entries after the first n.
func (w *world) since(n int) []queued {
	q := w.queue()
	if n > len(q) {
		return nil
	}
	return q[n:]
}

func find(q []queued, rcpt, kind string) []queued {
	var out []queued
	for _, m := range q {
		if (rcpt == "" || m.rcpt == rcpt) && (kind == "" || m.kind == kind) {
			out = append(out, m)
		}
	}
	return out
}

// one returns the single message of kind to rcpt.
func one(t *testing.T, q []queued, rcpt, kind string) queued {
	t.Helper()
	ms := find(q, rcpt, kind)
	if len(ms) != 1 {
		var got []string
		for _, m := range q {
			got = append(got, m.kind+"->"+m.rcpt)
		}
		t.Fatalf("%d %s messages to %s, want 1; queue: %v", len(ms), kind, rcpt, got)
	}
	return ms[0]
}

// decrypt decrypts a sealed copy with u's key, checking it is signed by
// the project key and that nothing of plain lies outside.
func (w *world) decrypt(u *gpgtest.User, m queued) string {
	w.t.Helper()
	if !strings.Contains(string(m.raw), "multipart/encrypted") {
		w.t.Fatalf("%s to %s is not encrypted:\n%s", m.kind, m.rcpt, m.raw)
	}
	plain, status, err := u.Decrypt(m.raw)
	if err != nil || !gpgtest.HasStatus(status, "DECRYPTION_OKAY") {
		w.t.Fatalf("%s cannot decrypt their %s: %v\n%s", u.Email, m.kind, err, status)
	}
	if !gpgtest.HasStatus(status, "GOODSIG") || !strings.Contains(status, "VALIDSIG "+w.key.Fingerprint()) {
		w.t.Fatalf("%s: %s not signed by the project key:\n%s", u.Email, m.kind, status)
	}
	return plain
}

var msgN int

// post sends a signed, encrypted post from u to incident id's list.
func (w *world) post(u *gpgtest.User, id, text string) {
	w.t.Helper()
	msgN++
	inner := "Content-Type: text/plain; charset=utf-8\r\n\r\n" + strings.ReplaceAll(text, "\n", "\r\n")
	list := "security+" + id + "@" + domain
	raw := gpgtest.PGPMIME(fmt.Sprintf("From: %s <%s>\r\nTo: %s\r\nSubject: ...\r\nMessage-ID: <m%d-%d@client.example>\r\n", u.Name, u.Email, list, msgN, time.Now().UnixNano()),
		u.EncryptSign([]byte(inner), w.key.Fingerprint()))
	w.deliver(u.Email, list, raw)
}

// command sends keywords from u and returns u's decrypted command reply.
func (w *world) command(u *gpgtest.User, id string, lines ...string) string {
	w.t.Helper()
	n := len(w.queue())
	w.post(u, id, "x-list: "+id+"\n"+strings.Join(lines, "\n")+"\n")
	for _, m := range w.since(n) {
		if m.rcpt == u.Email {
			return w.decrypt(u, m)
		}
	}
	w.t.Fatalf("no reply to %s's command %v", u.Email, lines)
	return ""
}

// autocrypt is an Autocrypt header carrying u's key.
func autocrypt(t *testing.T, u *gpgtest.User) string {
	k, err := crypto.ParseKey(u.Pub)
	if err != nil {
		t.Fatal(err)
	}
	b, err := k.BinaryPublic()
	if err != nil {
		t.Fatal(err)
	}
	return "Autocrypt: addr=" + u.Email + "; keydata=" + base64.StdEncoding.EncodeToString(b) + "\r\n"
}

func (w *world) incident(id string) *embargo.Incident {
	w.t.Helper()
	in, err := w.desk.Get(context.Background(), id)
	if err != nil {
		w.t.Fatal(err)
	}
	return in
}

// only returns the single incident.
func (w *world) only() *embargo.Incident {
	w.t.Helper()
	ins, err := w.desk.List(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	if len(ins) != 1 {
		w.t.Fatalf("%d incidents, want 1", len(ins))
	}
	return ins[0]
}

func (w *world) spoolState(id int64) string {
	var s string
	if err := w.db.Read(context.Background(), func(tx *sql.Tx) error {
		return tx.QueryRow(`SELECT state FROM spool WHERE id = ?`, id).Scan(&s)
	}); err != nil {
		w.t.Fatal(err)
	}
	return s
}

func (w *world) do(id string, fn func(p *embargo.Op) error) (string, error) {
	return w.desk.Do(context.Background(), id, embargo.CLI("test"), fn)
}

func (w *world) mustDo(id string, fn func(p *embargo.Op) error) string {
	w.t.Helper()
	out, err := w.do(id, fn)
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}
