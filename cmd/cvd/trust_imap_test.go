package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/internal/gpgtest"
)

// imapBin is a running "cvd serve" with its configuration folder, driven
// as members and an operator would: the CLI, SMTP and IMAP clients.
type imapBin struct {
	t          *testing.T
	dir, cfg   string
	s          *server
	projectPub []byte
	projectFpr string
	roots      *x509.CertPool
	serverName string
	posts      int
}

func startIMAPBin(t *testing.T, lists ...string) *imapBin {
	t.Helper()
	dir, cfg := initDir(t, "example.org")
	b := &imapBin{t: t, dir: dir, cfg: cfg}
	b.projectPub, _ = os.ReadFile(filepath.Join(dir, "keys/project.pub.asc"))
	b.projectFpr = regexp.MustCompile(`[0-9A-F]{40}`).FindString(gpgFingerprints(t, filepath.Join(dir, "keys/project.pub.asc")))
	certPEM, err := os.ReadFile(filepath.Join(dir, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	b.roots = x509.NewCertPool()
	b.roots.AppendCertsFromPEM(certPEM)
	blk, _ := pemDecode(certPEM)
	cert, err := x509.ParseCertificate(blk)
	if err != nil || len(cert.DNSNames) == 0 {
		t.Fatalf("cvd's certificate: %v", err)
	}
	b.serverName = cert.DNSNames[0]
	for _, l := range lists {
		if code, out, errOut := runCVD(t, dir, nil, "list", "create", l, "--config", cfg); code != 0 {
			t.Fatalf("list create %s: %s%s", l, out, errOut)
		}
	}
	b.s = startCVD(t, t.TempDir(), nil, "--config", cfg)
	return b
}

func pemDecode(b []byte) ([]byte, []byte) {
	blk, rest := pem.Decode(b)
	if blk == nil {
		return nil, rest
	}
	return blk.Bytes, rest
}

// person is a GnuPG user who has the project key.
func (b *imapBin) person(name, email string) *gpgtest.User {
	u := gpgtest.New(b.t, name, email, "never")
	u.Import(b.projectPub)
	return u
}

func (b *imapBin) join(list string, u *gpgtest.User, role string) {
	b.t.Helper()
	keyFile := filepath.Join(b.t.TempDir(), "key.asc")
	os.WriteFile(keyFile, u.Pub, 0o600)
	if code, out, errOut := runCVD(b.t, b.dir, nil, "member", "add", list, u.Email, "--role", role, "--key", keyFile, "--config", b.cfg); code != 0 {
		b.t.Fatalf("member add %s %s: %s%s", list, u.Email, out, errOut)
	}
}

// password has the operator issue u an IMAP password and reads it from
// the sealed message cvd delivered.
func (b *imapBin) password(u *gpgtest.User) string {
	b.t.Helper()
	n := len(outboxMail(b.t, b.dir)[u.Email])
	if code, out, errOut := runCVD(b.t, b.dir, nil, "member", "password", u.Email, "--config", b.cfg); code != 0 {
		b.t.Fatalf("member password: %s%s", out, errOut)
	}
	ms := waitMail(b.t, b.dir, u.Email, n+1)
	plain, _, err := u.Decrypt(ms[len(ms)-1])
	if err != nil {
		b.t.Fatalf("%s cannot read the password message: %v", u.Email, err)
	}
	m := passwordRE.FindStringSubmatch(plain)
	if m == nil {
		b.t.Fatalf("no password in:\n%s", plain)
	}
	return m[1]
}

// post sends text from u to the list over SMTP, encrypted to the project
// key and signed.
func (b *imapBin) post(list string, u *gpgtest.User, text string) {
	b.t.Helper()
	b.posts++
	inner := "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n"
	to := "security+" + list + "@example.org"
	raw := gpgtest.PGPMIME(fmt.Sprintf("From: %s <%s>\r\nTo: %s\r\nSubject: ...\r\nMessage-ID: <trust-imap-%d@example.net>\r\n", u.Name, u.Email, to, b.posts),
		u.EncryptSign([]byte(inner), b.projectFpr))
	c, err := smtp.Dial(b.s.addr)
	if err != nil {
		b.t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail(u.Email, []string{to}, strings.NewReader(raw)); err != nil {
		b.t.Fatalf("post to %s: %v", list, err)
	}
	c.Quit()
}

// dial connects to the IMAP server from the loopback address local
// ("127.0.0.2") and starts TLS.
func (b *imapBin) dial(local string, opts *imapclient.Options) *imapclient.Client {
	b.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", b.s.IMAP)
	if err != nil {
		b.t.Fatal(err)
	}
	if opts == nil {
		opts = &imapclient.Options{}
	}
	opts.TLSConfig = &tls.Config{RootCAs: b.roots, ServerName: b.serverName}
	c, err := imapclient.NewStartTLS(conn, opts)
	if err != nil {
		conn.Close()
		b.t.Fatalf("STARTTLS from %s: %v", local, err)
	}
	b.t.Cleanup(func() { c.Close() })
	return c
}

func (b *imapBin) login(local string, u *gpgtest.User, password string, opts *imapclient.Options) *imapclient.Client {
	b.t.Helper()
	c := b.dial(local, opts)
	if err := c.Login(u.Email, password).Wait(); err != nil {
		b.t.Fatalf("login %s from %s: %v", u.Email, local, err)
	}
	return c
}

// Ten wrong passwords for Cora from one address block Cora from that
// address only: she still logs in from hers.
func TestTrustIMAPLockoutFromOneAddress(t *testing.T) {
	b := startIMAPBin(t, "case-001")
	cora := b.person("Cora Coordinator", "cora@example.org")
	b.join("case-001", cora, "coordinator")
	pw := b.password(cora)

	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := b.dial("127.0.0.2", nil)
			errs[i] = c.Login(cora.Email, fmt.Sprintf("guess-%d", i)).Wait()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if imapCode(err) != imap.ResponseCodeAuthenticationFailed {
			t.Errorf("wrong password %d: %v, want NO [AUTHENTICATIONFAILED]", i, err)
		}
	}
	c := b.dial("127.0.0.2", nil)
	if err := c.Login(cora.Email, pw).Wait(); imapCode(err) != imap.ResponseCodeUnavailable {
		t.Errorf("right password from the attacking address: %v, want NO [UNAVAILABLE]", err)
	}
	c = b.dial("127.0.0.1", nil)
	if err := c.Login(cora.Email, pw).Wait(); err != nil {
		t.Errorf("Cora is locked out of her account from her own address: %v", err)
	}
	if _, err := c.Select("Incidents/case-001", nil).Wait(); err != nil {
		t.Errorf("select after login: %v", err)
	}
}

// Cora idles on incident A: mail to incident B, which she also belongs
// to, does not wake her session; mail to A does.
func TestTrustIMAPIdleOnlySelectedMailbox(t *testing.T) {
	b := startIMAPBin(t, "case-001", "case-002")
	cora := b.person("Cora Coordinator", "cora@example.org")
	rita := b.person("Rita Reporter", "rita@reporter.example")
	for _, l := range []string{"case-001", "case-002"} {
		b.join(l, cora, "coordinator")
		b.join(l, rita, "reporter")
	}
	pw := b.password(cora)
	b.post("case-001", rita, "first on A")
	waitMail(t, b.dir, cora.Email, 2)

	idleOn := func(mailbox string) (chan uint32, *imapclient.IdleCommand, uint32) {
		exists := make(chan uint32, 10)
		c := b.login("127.0.0.1", cora, pw, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					exists <- *d.NumMessages
				}
			},
		}})
		sel, err := c.Select(mailbox, nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		idle, err := c.Idle()
		if err != nil {
			t.Fatal(err)
		}
		return exists, idle, sel.NumMessages
	}
	onA, idleA, nA := idleOn("Incidents/case-001")
	onB, idleB, nB := idleOn("Incidents/case-002")
	defer idleA.Close()
	defer idleB.Close()
	if nA != 1 || nB != 0 {
		t.Fatalf("A has %d messages, B %d; want 1 and 0", nA, nB)
	}

	// Mail to B: the session idling on B is told (so the server has
	// committed it and woken its sessions) ...
	b.post("case-002", rita, "on B")
	select {
	case n := <-onB:
		if n != 1 {
			t.Errorf("B: EXISTS %d, want 1", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the session on B was not woken by mail to B")
	}
	// ... then mail to A: the first thing the session on A hears is A's
	// new message, nothing before it.
	b.post("case-001", rita, "second on A")
	select {
	case n := <-onA:
		if n != 2 {
			t.Errorf("the session idling on A was woken by mail to B: EXISTS %d (A has %d messages)", n, nA)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the session on A was not woken by mail to A")
	}
	select {
	case n := <-onB:
		t.Errorf("the session idling on B was woken by mail to A: EXISTS %d", n)
	default:
	}
}

// UIDs count each mailbox's own messages: posts to A, B, A give A's
// copies UIDs 1 and 2, and the INBOX's notice is UID 1.
func TestTrustIMAPUIDsPerMailbox(t *testing.T) {
	b := startIMAPBin(t, "case-001", "case-002")
	cora := b.person("Cora Coordinator", "cora@example.org")
	rita := b.person("Rita Reporter", "rita@reporter.example")
	deb := b.person("Debian Security", "security@debian.example")
	for _, l := range []string{"case-001", "case-002"} {
		b.join(l, cora, "coordinator")
		b.join(l, rita, "reporter")
	}
	b.join("case-002", deb, "downstream")
	b.post("case-001", rita, "one on A")
	waitMail(t, b.dir, cora.Email, 1)
	b.post("case-002", rita, "one on B")
	waitMail(t, b.dir, cora.Email, 2)
	b.post("case-001", rita, "two on A")
	waitMail(t, b.dir, cora.Email, 3)
	pw := b.password(cora)

	c := b.login("127.0.0.1", cora, pw, nil)
	uids := func(mailbox string) []imap.UID {
		t.Helper()
		if _, err := c.Select(mailbox, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		ms, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		var out []imap.UID
		for _, m := range ms {
			out = append(out, m.UID)
		}
		return out
	}
	if got := uids("Incidents/case-001"); fmt.Sprint(got) != "[1 2]" {
		t.Errorf("A's UIDs are %v, want [1 2]: they show traffic elsewhere", got)
	}
	if got := uids("Incidents/case-002"); fmt.Sprint(got) != "[1]" {
		t.Errorf("B's UIDs are %v, want [1]", got)
	}
	if got := uids("INBOX"); fmt.Sprint(got) != "[1]" {
		t.Errorf("INBOX UIDs are %v, want [1]", got)
	}
	st, err := c.Status("Incidents/case-001", &imap.StatusOptions{UIDNext: true}).Wait()
	if err != nil || st.UIDNext != 3 {
		t.Errorf("A's UIDNEXT %v: %v, want 3", st, err)
	}
}
