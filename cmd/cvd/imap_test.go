package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/cvd-project/cvd/accounts"
	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/mailserver"
	"github.com/cvd-project/cvd/store"
)

const imapDomain = "example.org"

// imapWorld is cvd's IMAP side on a real SQLite file: lists with GnuPG
// members, posts sealed to them, and the IMAP server on loopback.
type imapWorld struct {
	t       testing.TB
	dbPath  string
	db      *store.DB
	key     *crypto.Key
	keyPub  []byte
	svc     *lists.Service
	acc     *accounts.Issuer
	srv     *mailserver.IMAPServer
	addr    string
	tlsConf *tls.Config
	certPEM []byte
	log     *syncBuffer
	opts    mailserver.IMAPOptions
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newIMAPWorld(t testing.TB) *imapWorld {
	t.Helper()
	priv, pub, err := crypto.GenerateKey("example.org security team", "security@"+imapDomain, crypto.KindCurve25519)
	if err != nil {
		t.Fatal(err)
	}
	key, err := crypto.ParseKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := mailserver.SelfSignedCert([]string{"localhost", "127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	w := &imapWorld{t: t, dbPath: filepath.Join(t.TempDir(), "cvd.db"), key: key, keyPub: pub, log: &syncBuffer{},
		tlsConf: &tls.Config{Certificates: []tls.Certificate{cert}}, certPEM: certPEM}
	w.opts = mailserver.IMAPOptions{TLSConfig: w.tlsConf, InsecureLoopbackAuth: true, FailDelay: -1}
	w.open()
	t.Cleanup(w.close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", w.log.String())
		}
	})
	return w
}

// open opens the database and starts the IMAP server.
func (w *imapWorld) open() {
	w.t.Helper()
	db, err := store.Open(context.Background(), w.dbPath)
	if err != nil {
		w.t.Fatal(err)
	}
	w.db = db
	log := slog.New(slog.NewTextHandler(w.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w.svc = &lists.Service{DB: db, Domain: imapDomain, Key: w.key, Log: log}
	w.acc = &accounts.Issuer{DB: db, Key: w.key, Domain: imapDomain, Server: accounts.Server{Host: "127.0.0.1", Port: "1143", Security: "STARTTLS"},
		Now: time.Now, Log: log}
	opts := w.opts
	opts.Logger = log
	w.srv = mailserver.NewIMAPServer(imapBackend{db}, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	w.addr = ln.Addr().String()
	go w.srv.Serve(ln)
}

func (w *imapWorld) close() {
	if w.srv != nil {
		w.srv.Close()
		w.srv = nil
	}
	if w.db != nil {
		w.db.Close()
		w.db = nil
	}
}

// restart stops the server and the database and starts them again.
func (w *imapWorld) restart() {
	w.close()
	w.open()
}

func (w *imapWorld) person(name, email string) *gpgtest.User {
	u := gpgtest.New(w.t, name, email, "never")
	u.Import(w.keyPub)
	return u
}

func (w *imapWorld) list(name string) {
	w.t.Helper()
	if _, err := w.svc.CreateList(context.Background(), name, store.ListIncident, "test"); err != nil {
		w.t.Fatal(err)
	}
}

func (w *imapWorld) join(list string, u *gpgtest.User, role string) *store.Member {
	w.t.Helper()
	m, err := w.svc.AddMember(context.Background(), list, lists.NewMember{Email: u.Email, Name: u.Name, Role: role, Key: u.Pub, Actor: "test"})
	if err != nil {
		w.t.Fatalf("add %s: %v", u.Email, err)
	}
	return m
}

// post has from post text to list (encrypted to the list, signed) and
// tells the IMAP server, as cvd serve does after routing.
func (w *imapWorld) post(list string, from *gpgtest.User, subject, text string) {
	w.t.Helper()
	ctx := context.Background()
	// The list is named in the protected header (RFC 9788), as a member's
	// client does.
	inner := "Subject: " + subject + "\r\nTo: security+" + list + "@" + imapDomain + "\r\nContent-Type: text/plain; charset=utf-8; protected-headers=\"v1\"\r\n\r\n" + text + "\r\n"
	armored := from.EncryptSign([]byte(inner), w.key.Fingerprint())
	raw := "From: " + from.Name + " <" + from.Email + ">\r\nTo: security+" + list + "@" + imapDomain + "\r\nSubject: ...\r\n" +
		"Message-ID: <" + accounts.NewPassword() + "@test>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"XX\"\r\n\r\n" +
		"--XX\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n" +
		"--XX\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\r\n" +
		strings.ReplaceAll(string(armored), "\n", "\r\n") + "\r\n--XX--\r\n"
	rcpt := "security+" + list + "@" + imapDomain
	id, err := w.db.Spool(ctx, store.Envelope{ReceivedAt: time.Now(), MailFrom: from.Email, Rcpts: []string{rcpt}}, []byte(raw))
	if err != nil {
		w.t.Fatal(err)
	}
	sm, err := w.db.SpooledMessage(ctx, id)
	if err != nil {
		w.t.Fatal(err)
	}
	res, err := w.svc.HandlePost(ctx, list, sm, rcpt)
	if err != nil {
		w.t.Fatal(err)
	}
	if res.Status != lists.PostDistributed {
		w.t.Fatalf("post to %s: %s (%s)", list, res.Status, res.Reason)
	}
	w.srv.Notify()
}

var passwordRE = regexp.MustCompile(`(?m)^\s*password:\s+(\S+)`)

// password provisions accounts and reads u's newest IMAP password from the
// sealed message cvd queued for them, decrypting it with u's key.
func (w *imapWorld) password(u *gpgtest.User) string {
	w.t.Helper()
	ctx := context.Background()
	if _, err := w.acc.Provision(ctx); err != nil {
		w.t.Fatal(err)
	}
	var raw []byte
	err := w.db.Read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT qm.raw FROM queue_msg qm JOIN queue q ON q.msg_id = qm.id
			WHERE q.rcpt = ? AND qm.kind = 'imap-password' ORDER BY qm.id DESC LIMIT 1`, u.Email).Scan(&raw)
	})
	if err != nil {
		w.t.Fatalf("password mail for %s: %v", u.Email, err)
	}
	if bytes.Contains(raw, []byte("password:")) {
		w.t.Fatal("password mail is not encrypted")
	}
	plain, status, err := u.Decrypt(raw)
	if err != nil || !gpgtest.HasStatus(status, "GOODSIG") {
		w.t.Fatalf("password mail for %s: %v\n%s", u.Email, err, status)
	}
	m := passwordRE.FindStringSubmatch(plain)
	if m == nil {
		w.t.Fatalf("no password in %q", plain)
	}
	return m[1]
}

func (w *imapWorld) dial(opts *imapclient.Options) *imapclient.Client {
	w.t.Helper()
	c, err := imapclient.DialInsecure(w.addr, opts)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { c.Close() })
	return c
}

func (w *imapWorld) login(u *gpgtest.User, password string, opts *imapclient.Options) *imapclient.Client {
	w.t.Helper()
	c := w.dial(opts)
	if err := c.Login(u.Email, password).Wait(); err != nil {
		w.t.Fatalf("login %s: %v", u.Email, err)
	}
	return c
}

// copies returns u's sealed copies of the posts to list, as queued.
func (w *imapWorld) copies(list string, u *gpgtest.User) [][]byte {
	w.t.Helper()
	ctx := context.Background()
	var ids []int64
	err := w.db.Read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT c.queue_msg FROM post_copy c
			JOIN member m ON m.id = c.member_id JOIN list l ON l.id = m.list_id WHERE l.name = ? AND m.email = ? ORDER BY c.id`, list, u.Email)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	if err != nil {
		w.t.Fatal(err)
	}
	var out [][]byte
	for _, id := range ids {
		raw, err := w.db.QueuedRaw(ctx, id)
		if err != nil {
			w.t.Fatal(err)
		}
		out = append(out, raw)
	}
	return out
}

// imapPeople is the usual cast: two incidents, Eve only in the second.
type imapPeople struct {
	rita, cora, deb, eve *gpgtest.User
	pw                   map[string]string
}

func setupIncidents(w *imapWorld) *imapPeople {
	p := &imapPeople{
		rita: w.person("Rita Reporter", "rita@reporter.example"),
		cora: w.person("Cora Coordinator", "cora@example.org"),
		deb:  w.person("Debian Security", "security@debian.example"),
		eve:  w.person("Eve Elsewhere", "eve@other.example"),
		pw:   map[string]string{},
	}
	w.list("2026-001")
	w.list("2026-002")
	w.join("2026-001", p.rita, "reporter")
	w.join("2026-001", p.cora, "coordinator")
	w.join("2026-001", p.deb, "downstream")
	w.join("2026-002", p.cora, "coordinator")
	w.join("2026-002", p.eve, "reporter")
	w.post("2026-001", p.rita, "heap overflow in parse_header", "The overflow is in parse_header().")
	w.post("2026-001", p.cora, "Re: heap overflow", "Confirmed; fix in progress.")
	w.post("2026-002", p.eve, "second issue", "Something else entirely.")
	for _, u := range []*gpgtest.User{p.rita, p.cora, p.deb, p.eve} {
		p.pw[u.Email] = w.password(u)
	}
	return p
}

func listNames(t *testing.T, c *imapclient.Client) map[string][]imap.MailboxAttr {
	t.Helper()
	ls, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]imap.MailboxAttr{}
	for _, l := range ls {
		out[l.Mailbox] = l.Attrs
	}
	return out
}

func imapCode(err error) imap.ResponseCode {
	if ie, ok := err.(*imap.Error); ok {
		return ie.Code
	}
	return ""
}

func TestIMAPArchive(t *testing.T) {
	w := newIMAPWorld(t)
	p := setupIncidents(w)
	c := w.login(p.cora, p.pw[p.cora.Email], nil)

	// LIST: INBOX, Announce, and exactly Cora's incidents.
	names := listNames(t, c)
	for _, n := range []string{"INBOX", "Announce", "Incidents", "Incidents/2026-001", "Incidents/2026-002"} {
		if _, ok := names[n]; !ok {
			t.Errorf("LIST lacks %s: %v", n, names)
		}
	}
	if len(names) != 5 {
		t.Errorf("LIST: %v", names)
	}
	d := w.login(p.deb, p.pw[p.deb.Email], nil)
	dnames := listNames(t, d)
	if _, ok := dnames["Incidents/2026-002"]; ok || len(dnames) != 4 {
		t.Errorf("Deb sees %v", dnames)
	}
	lsub, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil || len(lsub) != 4 {
		t.Errorf("LSUB: %d %v", len(lsub), err)
	}

	// STATUS.
	st, err := c.Status("Incidents/2026-001", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true, Size: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	// Cora gets Rita's post; her own is not sent back to her.
	if *st.NumMessages != 1 || *st.NumUnseen != 1 || st.UIDValidity == 0 || st.UIDNext == 0 || *st.Size == 0 {
		t.Errorf("STATUS: messages %d unseen %d validity %d next %d", *st.NumMessages, *st.NumUnseen, st.UIDValidity, st.UIDNext)
	}

	// SELECT and FETCH what clients use.
	sel, err := d.Select("Incidents/2026-001", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 2 {
		t.Fatalf("Deb's incident has %d messages", sel.NumMessages)
	}
	msgs, err := d.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection:   []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	want := w.copies("2026-001", p.deb)
	if len(msgs) != 2 || len(want) != 2 {
		t.Fatalf("fetched %d, queued %d", len(msgs), len(want))
	}
	for i, m := range msgs {
		body := m.FindBodySection(&imap.FetchItemBodySection{Peek: true})
		if !bytes.Equal(body, want[i]) {
			t.Errorf("message %d is not Deb's copy as sent", i+1)
		}
		if m.RFC822Size != int64(len(want[i])) || len(m.Flags) != 0 || m.InternalDate.IsZero() {
			t.Errorf("message %d: size %d flags %v date %v", i+1, m.RFC822Size, m.Flags, m.InternalDate)
		}
		if m.Envelope == nil || m.Envelope.Subject != crypto.ObscuredSubject || len(m.Envelope.From) == 0 {
			t.Errorf("message %d envelope %+v", i+1, m.Envelope)
		}
		if bs, ok := m.BodyStructure.(*imap.BodyStructureMultiPart); !ok || bs.Subtype != "encrypted" || len(bs.Children) != 2 {
			t.Errorf("message %d body structure %#v", i+1, m.BodyStructure)
		}
		plain, status, err := p.deb.Decrypt(body)
		if err != nil || !strings.Contains(plain, "parse_header") && !strings.Contains(plain, "fix in progress") {
			t.Errorf("Deb cannot read message %d: %v %s", i+1, err, status)
		}
		if _, _, err := p.eve.Decrypt(body); err == nil {
			t.Errorf("Eve decrypted Deb's copy %d", i+1)
		}
		if _, _, err := p.cora.Decrypt(body); err == nil {
			t.Errorf("Cora decrypted Deb's copy %d", i+1)
		}
	}

	// Flags are per account: Deb reads message 1 (BODY[] without PEEK).
	if _, err := d.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect(); err != nil {
		t.Fatal(err)
	}
	if err := d.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, "$Important"}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	sr, err := d.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
	if err != nil || len(sr.AllUIDs()) != 1 || sr.AllUIDs()[0] != msgs[1].UID {
		t.Errorf("UID SEARCH UNSEEN: %v %v", sr, err)
	}
	sr, err = d.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{"$important"}}, nil).Wait()
	if err != nil || len(sr.AllUIDs()) != 1 {
		t.Errorf("UID SEARCH KEYWORD: %v %v", sr, err)
	}
	sr, err = d.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "[...]"}}}, nil).Wait()
	if err != nil || len(sr.AllUIDs()) != 2 {
		t.Errorf("UID SEARCH HEADER: %v %v", sr, err)
	}
	rc := w.login(p.rita, p.pw[p.rita.Email], nil)
	st, err = rc.Status("Incidents/2026-001", &imap.StatusOptions{NumMessages: true, NumUnseen: true}).Wait()
	if err != nil || *st.NumMessages != 1 || *st.NumUnseen != 1 {
		t.Errorf("Rita's status after Deb read: %v %+v", err, st)
	}
	st, err = c.Status("Incidents/2026-001", &imap.StatusOptions{NumUnseen: true}).Wait()
	if err != nil || *st.NumUnseen != 1 {
		t.Errorf("Cora's unseen after Deb read: %v", err)
	}

	// Archives are read-only.
	for name, err := range map[string]error{
		"store \\Deleted": d.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(),
		"expunge":         d.Expunge().Close(),
		"copy":            func() error { _, err := d.Copy(imap.SeqSetNum(1), "INBOX").Wait(); return err }(),
		"create":          d.Create("Mine", nil).Wait(),
		"delete":          d.Delete("Incidents/2026-001").Wait(),
		"append": func() error {
			a := d.Append("Incidents/2026-001", 4, nil)
			a.Write([]byte("x\r\n\r\n"[:4]))
			a.Close()
			_, err := a.Wait()
			return err
		}(),
	} {
		if imapCode(err) != imap.ResponseCodeCannot {
			t.Errorf("%s: %v, want NO [CANNOT]", name, err)
		}
	}
	// CLOSE succeeds (nothing is \Deleted) and nothing was expunged.
	if err := d.UnselectAndExpunge().Wait(); err != nil {
		t.Errorf("CLOSE: %v", err)
	}
	// EXAMINE: flags cannot change, and BODY[] does not set \Seen.
	if _, err := d.Select("Incidents/2026-001", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := d.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err == nil {
		t.Error("STORE after EXAMINE accepted")
	}
	if _, err := d.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect(); err != nil {
		t.Fatal(err)
	}
	fl, err := d.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(fl) != 2 || len(fl[0].Flags) != 1 || fl[0].Flags[0] != imap.FlagSeen || len(fl[1].Flags) != 2 {
		t.Errorf("flags after EXAMINE: %v %v", fl, err)
	}

	// Isolation: Deb cannot select, examine or status Cora's other incident,
	// nor a made-up one; the attempts are logged.
	for _, try := range []func() error{
		func() error { _, err := d.Select("Incidents/2026-002", nil).Wait(); return err },
		func() error {
			_, err := d.Select("Incidents/2026-002", &imap.SelectOptions{ReadOnly: true}).Wait()
			return err
		},
		func() error {
			_, err := d.Status("Incidents/2026-002", &imap.StatusOptions{NumMessages: true}).Wait()
			return err
		},
		func() error { _, err := d.Select("Incidents/../2026-002", nil).Wait(); return err },
		func() error { _, err := d.Select("Incidents/2026-999", nil).Wait(); return err },
	} {
		if err := try(); imapCode(err) != imap.ResponseCodeNonExistent {
			t.Errorf("cross-incident access: %v, want NO [NONEXISTENT]", err)
		}
	}
	if n := strings.Count(w.log.String(), "imap access refused"); n < 3 {
		t.Errorf("%d refused attempts logged, want 3", n)
	}

	// INBOX holds cvd's notices to the member (here: the password mail),
	// never list copies.
	sel, err = d.Select("inbox", nil).Wait()
	if err != nil || sel.NumMessages != 1 {
		t.Errorf("INBOX: %v %v", sel, err)
	}
}

func TestIMAPIdleAndRemoval(t *testing.T) {
	w := newIMAPWorld(t)
	p := setupIncidents(w)
	exists := make(chan uint32, 10)
	c := w.login(p.deb, p.pw[p.deb.Email], &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	}})
	if _, err := c.Select("Incidents/2026-001", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	w.post("2026-001", p.rita, "more details", "A reproducer is attached.")
	select {
	case n := <-exists:
		if n != 3 {
			t.Errorf("IDLE: EXISTS %d, want 3", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("IDLE: no EXISTS after a post")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(3), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch new post: %v", err)
	}
	if plain, _, err := p.deb.Decrypt(msgs[0].BodySection[0].Bytes); err != nil || !strings.Contains(plain, "reproducer") {
		t.Errorf("new post: %v", err)
	}

	// Deb is removed from the incident: the open session loses it at once.
	ctx := context.Background()
	err = w.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE member SET state = 'removed' WHERE email = ? AND list_id = (SELECT id FROM list WHERE name = '2026-001')`, p.deb.Email)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true}).Collect(); err == nil {
		t.Error("removed member still fetches")
	}
	c2 := w.login(p.deb, p.pw[p.deb.Email], nil)
	if _, err := c2.Select("Incidents/2026-001", nil).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("removed member selects: %v", err)
	}
	if names := listNames(t, c2); len(names) != 2 {
		t.Errorf("removed member lists %v", names)
	}
}

func TestIMAPUIDsStableAcrossRestart(t *testing.T) {
	w := newIMAPWorld(t)
	p := setupIncidents(w)
	snapshot := func() (uint32, []imap.UID, [][]imap.Flag) {
		c := w.login(p.cora, p.pw[p.cora.Email], nil)
		defer func() { c.Logout().Wait() }()
		sel, err := c.Select("Incidents/2026-002", nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		ms, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true, Flags: true}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		var uids []imap.UID
		var flags [][]imap.Flag
		for _, m := range ms {
			uids = append(uids, m.UID)
			flags = append(flags, m.Flags)
		}
		return sel.UIDValidity, uids, flags
	}
	c := w.login(p.cora, p.pw[p.cora.Email], nil)
	if _, err := c.Select("Incidents/2026-002", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen, imap.FlagAnswered}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	v1, u1, f1 := snapshot()
	w.restart()
	v2, u2, f2 := snapshot()
	if v1 != v2 || len(u1) != 1 || len(u2) != 1 || u1[0] != u2[0] || len(f2[0]) != 2 || len(f1[0]) != 2 {
		t.Errorf("before restart %d %v %v, after %d %v %v", v1, u1, f1, v2, u2, f2)
	}
	// New messages get higher UIDs than any before.
	w.post("2026-002", p.eve, "follow-up", "more")
	c = w.login(p.cora, p.pw[p.cora.Email], nil)
	sel, err := c.Select("Incidents/2026-002", nil).Wait()
	if err != nil || sel.NumMessages != 2 || sel.UIDValidity != v1 {
		t.Fatalf("after post: %+v %v", sel, err)
	}
	ms, err := c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{UID: true}).Collect()
	if err != nil || len(ms) != 1 || ms[0].UID <= u1[0] || uint32(ms[0].UID) >= uint32(sel.UIDNext) {
		t.Errorf("new UID %v after %v, UIDNEXT %d", ms, u1, sel.UIDNext)
	}
}

func TestIMAPLoginSecurity(t *testing.T) {
	w := newIMAPWorld(t)
	w.close()
	w.opts = mailserver.IMAPOptions{TLSConfig: w.tlsConf, FailDelay: -1, MaxFailuresPerAccountIP: 3, MaxFailuresPerIP: 5}
	w.open()
	w.list("2026-001")
	cora := w.person("Cora Coordinator", "cora@example.org")
	mal := w.person("Mallory", "mallory@example.net")
	w.join("2026-001", cora, "coordinator")
	w.join("2026-001", mal, "observer")
	pw := w.password(cora)
	malPW := w.password(mal)

	// No login without TLS (not even on loopback outside the embedded
	// default): LOGINDISABLED, and LOGIN is refused.
	c := w.dial(nil)
	if caps, err := c.Capability().Wait(); err != nil || !caps.Has(imap.CapLoginDisabled) || !caps.Has(imap.CapStartTLS) {
		t.Errorf("cleartext caps %v %v", caps, err)
	}
	if err := c.Login(cora.Email, pw).Wait(); err == nil {
		t.Error("cleartext login accepted")
	}
	// STARTTLS, then LOGIN and AUTHENTICATE PLAIN.
	tc, err := imapclient.DialStartTLS(w.addr, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := tc.Login(cora.Email, pw).Wait(); err != nil {
		t.Errorf("STARTTLS login: %v", err)
	}
	// Implicit TLS.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go w.srv.ServeTLS(ln)
	ic, err := imapclient.DialTLS(ln.Addr().String(), &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Login(strings.ToUpper(cora.Email), pw).Wait(); err != nil {
		t.Errorf("implicit TLS login: %v", err)
	}

	tlsLogin := func(user, pass string) error {
		c, err := imapclient.DialTLS(ln.Addr().String(), &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.Login(user, pass).Wait()
	}
	// Brute force on one account: after 3 failures even the right
	// password is refused.
	for i := 0; i < 3; i++ {
		if err := tlsLogin(cora.Email, "guess-"+accounts.NewPassword()); imapCode(err) != imap.ResponseCodeAuthenticationFailed {
			t.Errorf("wrong password %d: %v", i, err)
		}
	}
	if err := tlsLogin(cora.Email, pw); imapCode(err) != imap.ResponseCodeUnavailable {
		t.Errorf("login after 3 failures: %v, want NO [UNAVAILABLE]", err)
	}
	// Per address: two more failures on other names exhaust the address,
	// and Mallory's right password is refused too.
	for _, u := range []string{"nobody@example.org", "root"} {
		if err := tlsLogin(u, "x"); imapCode(err) != imap.ResponseCodeAuthenticationFailed {
			t.Errorf("unknown user %s: %v", u, err)
		}
	}
	if err := tlsLogin(mal.Email, malPW); imapCode(err) != imap.ResponseCodeUnavailable {
		t.Errorf("login from a blocked address: %v", err)
	}
	if strings.Contains(w.log.String(), pw) || strings.Contains(w.log.String(), malPW) {
		t.Error("a password is in the log")
	}
}

// mbsync syncs one account into maildir with isync's mbsync over
// STARTTLS, trusting the test certificate, and returns its output.
func (w *imapWorld) mbsync(u *gpgtest.User, password, maildir string) (string, error) {
	w.t.Helper()
	if _, err := exec.LookPath("mbsync"); err != nil {
		w.t.Fatal("mbsync is not installed (the test script installs it: apt-get install -y isync)")
	}
	dir := w.t.TempDir()
	if err := os.MkdirAll(maildir, 0o700); err != nil {
		w.t.Fatal(err)
	}
	cert := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(cert, w.certPEM, 0o600); err != nil {
		w.t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(w.addr)
	rc := fmt.Sprintf(`IMAPAccount t
Host %s
Port %s
User %s
Pass %s
SSLType STARTTLS
CertificateFile %s
AuthMechs LOGIN

IMAPStore t-remote
Account t

MaildirStore t-local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel t
Far :t-remote:
Near :t-local:
Patterns *
Create Near
Sync Pull
Expunge None
SyncState *
`, host, port, u.Email, password, cert, maildir, maildir)
	conf := filepath.Join(dir, "mbsyncrc")
	if err := os.WriteFile(conf, []byte(rc), 0o600); err != nil {
		w.t.Fatal(err)
	}
	cmd := exec.Command("mbsync", "-c", conf, "-a")
	cmd.Env = append(os.Environ(), "HOME="+dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// maildirFiles returns the messages of one Maildir folder by file name.
func maildirFiles(t *testing.T, folder string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, sub := range []string{"cur", "new"} {
		es, _ := os.ReadDir(filepath.Join(folder, sub))
		for _, e := range es {
			b, err := os.ReadFile(filepath.Join(folder, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = b
		}
	}
	return out
}

func TestIMAPMbsync(t *testing.T) {
	w := newIMAPWorld(t)
	p := setupIncidents(w)
	// Deb reads one message; flags are Deb's own.
	c := w.login(p.deb, p.pw[p.deb.Email], nil)
	if _, err := c.Select("Incidents/2026-001", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}

	debDir := filepath.Join(t.TempDir(), "deb")
	if out, err := w.mbsync(p.deb, p.pw[p.deb.Email], debDir); err != nil {
		t.Fatalf("mbsync: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(debDir, "Incidents", "2026-002")); err == nil {
		t.Error("Deb's Maildir has an incident Deb is not in")
	}
	files := maildirFiles(t, filepath.Join(debDir, "Incidents", "2026-001"))
	if len(files) != 2 {
		t.Fatalf("Deb's incident folder has %d messages", len(files))
	}
	seen := 0
	for name, b := range files {
		if strings.HasSuffix(name, ",S") || strings.Contains(name, ":2,S") {
			seen++
		}
		plain, status, err := p.deb.Decrypt(b)
		if err != nil || !gpgtest.HasStatus(status, "GOODSIG") || !strings.Contains(plain, "heap overflow") && !strings.Contains(plain, "fix in progress") {
			t.Errorf("Deb cannot read synced %s: %v\n%s", name, err, status)
		}
		for _, other := range []*gpgtest.User{p.cora, p.eve} {
			if _, _, err := other.Decrypt(b); err == nil {
				t.Errorf("%s decrypted Deb's synced %s", other.Email, name)
			}
		}
	}
	if seen != 1 {
		t.Errorf("%d of Deb's synced messages are seen, want 1: %v", seen, keys(files))
	}
	if inbox := maildirFiles(t, filepath.Join(debDir, "INBOX")); len(inbox) != 1 {
		t.Errorf("Deb's INBOX has %d messages, want the password notice", len(inbox))
	}

	// Cora's sync: both incidents, nothing seen (Deb's flags are Deb's).
	coraDir := filepath.Join(t.TempDir(), "cora")
	if out, err := w.mbsync(p.cora, p.pw[p.cora.Email], coraDir); err != nil {
		t.Fatalf("mbsync: %v\n%s", err, out)
	}
	for folder, n := range map[string]int{"Incidents/2026-001": 1, "Incidents/2026-002": 1} {
		fs := maildirFiles(t, filepath.Join(coraDir, folder))
		if len(fs) != n {
			t.Errorf("Cora's %s has %d messages", folder, len(fs))
		}
		for name, b := range fs {
			if strings.Contains(name, ":2,S") {
				t.Errorf("Cora's %s is seen", name)
			}
			if _, _, err := p.cora.Decrypt(b); err != nil {
				t.Errorf("Cora cannot read %s: %v", name, err)
			}
		}
	}

	// A new post, a restart: the next sync fetches exactly the new message
	// (same UIDVALIDITY, same UIDs).
	w.post("2026-001", p.rita, "update", "patch attached")
	w.restart()
	out, err := w.mbsync(p.deb, p.pw[p.deb.Email], debDir)
	if err != nil {
		t.Fatalf("mbsync after restart: %v\n%s", err, out)
	}
	if strings.Contains(strings.ToLower(out), "uidvalidity") {
		t.Errorf("mbsync complains about UIDVALIDITY:\n%s", out)
	}
	after := maildirFiles(t, filepath.Join(debDir, "Incidents", "2026-001"))
	if len(after) != 3 {
		t.Errorf("after the restart Deb has %d messages, want 3: %v", len(after), keys(after))
	}
	for name := range files {
		if _, ok := after[name]; !ok {
			t.Errorf("%s was replaced after the restart", name)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

const imaplibScript = `
import imaplib, json, os, ssl, sys
host, port, user, pw = os.environ["H"], int(os.environ["P"]), os.environ["U"], os.environ["PW"]
out = {}
m = imaplib.IMAP4(host, port)
ctx = ssl.create_default_context(cafile=os.environ["CA"])
ctx.check_hostname = False
m.starttls(ssl_context=ctx)
m.login(user, pw)
typ, data = m.list()
out["list"] = [d.decode() for d in data]
typ, data = m.select('"Incidents/2026-001"', readonly=False)
out["exists"] = int(data[0])
typ, data = m.uid("SEARCH", None, "ALL")
uids = data[0].split()
out["uids"] = [u.decode() for u in uids]
bodies = []
for u in uids:
    typ, data = m.uid("FETCH", u, "(FLAGS RFC822.SIZE BODY.PEEK[])")
    bodies.append(data[0][1].decode())
out["bodies"] = bodies
typ, data = m.uid("STORE", uids[0], "+FLAGS", "(\\Flagged)")
out["store"] = typ
typ, data = m.uid("SEARCH", None, "FLAGGED")
out["flagged"] = [u.decode() for u in data[0].split()]
try:
    typ, data = m.select('"Incidents/2026-002"')
    out["other"] = typ + " " + data[0].decode()
except imaplib.IMAP4.error as e:
    out["other"] = "NO: " + str(e)
try:
    m.select('"Incidents/2026-001"')
    typ, data = m.append('"Incidents/2026-001"', None, None, b"Subject: x\r\n\r\nx\r\n")
    out["append"] = typ + " " + data[0].decode()
except imaplib.IMAP4.error as e:
    out["append"] = "NO: " + str(e)
m.logout()
json.dump(out, sys.stdout)
`

func TestIMAPPythonImaplib(t *testing.T) {
	w := newIMAPWorld(t)
	p := setupIncidents(w)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, w.certPEM, 0o600)
	host, port, _ := net.SplitHostPort(w.addr)
	if _, err := exec.LookPath("python3"); err != nil {
		cvdtest.SkipOrFail(t, "python3 is not installed (the test script installs it: apt-get install -y python3)")
	}
	cmd := exec.Command("python3", "-c", imaplibScript)
	cmd.Env = append(os.Environ(), "H="+host, "P="+port, "U="+p.deb.Email, "PW="+p.pw[p.deb.Email], "CA="+ca)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("python imaplib: %v\n%s", err, stderr.String())
	}
	var out struct {
		List    []string
		Exists  int
		UIDs    []string
		Bodies  []string
		Store   string
		Flagged []string
		Other   string
		Append  string
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if out.Exists != 2 || len(out.UIDs) != 2 || len(out.Bodies) != 2 || out.Store != "OK" || len(out.Flagged) != 1 {
		t.Errorf("imaplib: %+v", out)
	}
	if len(out.List) != 4 || strings.Contains(strings.Join(out.List, "\n"), "2026-002") {
		t.Errorf("imaplib LIST: %q", out.List)
	}
	if !strings.Contains(out.Other, "NONEXISTENT") || !strings.Contains(out.Append, "CANNOT") {
		t.Errorf("imaplib: other incident %q, append %q", out.Other, out.Append)
	}
	for i, body := range out.Bodies {
		if _, _, err := p.deb.Decrypt([]byte(body)); err != nil {
			t.Errorf("Deb cannot read body %d from imaplib: %v", i, err)
		}
		if _, _, err := p.rita.Decrypt([]byte(body)); err == nil && i == 1 {
			t.Errorf("Rita decrypted Deb's copy")
		}
	}
	// The flag is Deb's only.
	c := w.login(p.rita, p.pw[p.rita.Email], nil)
	if _, err := c.Select("Incidents/2026-001", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if sr, err := c.Search(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}}, nil).Wait(); err != nil || len(sr.AllSeqNums()) != 0 {
		t.Errorf("Rita sees Deb's flag: %v %v", sr, err)
	}
}

func TestCLIMemberPassword(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	u := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	keyFile := filepath.Join(t.TempDir(), "key.asc")
	os.WriteFile(keyFile, u.Pub, 0o600)
	if code, out, errOut := runCVD(t, dir, nil, "list", "create", "parser-bug", "--config", cfg); code != 0 {
		t.Fatalf("list create: %s%s", out, errOut)
	}
	if code, out, errOut := runCVD(t, dir, nil, "member", "add", "parser-bug", u.Email, "--role", "coordinator", "--key", keyFile, "--config", cfg); code != 0 {
		t.Fatalf("member add: %s%s", out, errOut)
	}
	code, out, errOut := runCVD(t, dir, nil, "member", "password", u.Email, "--config", cfg)
	if code != 0 || !strings.Contains(out, "created an IMAP account for cora@example.org") || !strings.Contains(out, u.Fpr) {
		t.Fatalf("member password: %d %s%s", code, out, errOut)
	}
	code, out, _ = runCVD(t, dir, nil, "member", "password", u.Email, "--config", cfg)
	if code != 0 || !strings.Contains(out, "replaced the IMAP password") {
		t.Errorf("second member password: %d %s", code, out)
	}
	code, _, errOut = runCVD(t, dir, nil, "member", "password", "nobody@example.org", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "not a member") {
		t.Errorf("password for a non-member: %d %s", code, errOut)
	}
	_, out, _ = runCVD(t, dir, nil, "queue", "list", "--config", cfg, "--all")
	if strings.Count(out, "cora@example.org") != 2 {
		t.Errorf("queue after two passwords:\n%s", out)
	}
}
