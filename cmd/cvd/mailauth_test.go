package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/dnstest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// authWorld is cvd with its DNS on a loopback server holding the test
// zones, the production rule (no automatic mail to unauthenticated
// senders) and a coordinator, Cora.
type authWorld struct {
	*bindWorld
	dns *dnstest.Server
	key ed25519.PrivateKey
}

func newAuthWorld(t *testing.T) *authWorld {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dkimTXT := `"v=DKIM1; k=ed25519; p=` + base64.StdEncoding.EncodeToString(pub) + `"`
	dns := dnstest.Start(t,
		// DKIM, and a DMARC policy that needs it or aligned SPF.
		`sel._domainkey.dkim.example. 300 IN TXT `+dkimTXT,
		`_dmarc.dkim.example. 300 IN TXT "v=DMARC1; p=reject"`,
		// SPF that authorises this machine, for the sender and its HELO name.
		`spf.example. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`mx.spf.example. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.spf.example. 300 IN TXT "v=DMARC1; p=none"`,
		// SPF that does not.
		`spffail.example. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
		`_dmarc.spffail.example. 300 IN TXT "v=DMARC1; p=reject"`,
		// A domain someone would like to impersonate.
		`victim.example. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
		`_dmarc.victim.example. 300 IN TXT "v=DMARC1; p=reject"`,
	)
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	dir, cfg := initDir(t, "example.org")
	cvdtest.SetConfig(t, cfg, "acknowledge_unauthenticated", "false")
	cvdtest.SetConfig(t, cfg, "resolver", `"`+dns.Addr+`"`)
	w := &authWorld{dns: dns, key: priv}
	w.bindWorld = newBindWorldIn(t, dir, cfg, cora)
	return w
}

// sendAs delivers raw over SMTP with HELO helo and envelope sender from.
func (w *authWorld) sendAs(helo, from string, raw []byte) {
	w.t.Helper()
	c, err := smtp.Dial(w.s.addr)
	if err != nil {
		w.t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello(helo); err != nil {
		w.t.Fatal(err)
	}
	if err := c.Mail(from); err != nil {
		w.t.Fatal(err)
	}
	if err := c.Rcpt("security@example.org"); err != nil {
		w.t.Fatal(err)
	}
	wc, err := c.Data()
	if err != nil {
		w.t.Fatal(err)
	}
	wc.Write(raw)
	if err := wc.Close(); err != nil {
		w.t.Fatal(err)
	}
	c.Quit()
}

func authReport(from, token string) []byte {
	return []byte("From: <" + from + ">\r\nTo: security@example.org\r\nSubject: bug " + token + "\r\nDate: " +
		time.Now().Format(time.RFC1123Z) + "\r\nMessage-ID: <" + token + "@test>\r\n\r\nThe parser overflows. " + token + "\r\n")
}

// signed is raw with a DKIM signature of dkim.example.
func (w *authWorld) signed(raw []byte) []byte {
	w.t.Helper()
	var b bytes.Buffer
	if err := dkim.Sign(&b, bytes.NewReader(raw), &dkim.SignOptions{Domain: "dkim.example", Selector: "sel", Signer: w.key}); err != nil {
		w.t.Fatal(err)
	}
	return b.Bytes()
}

// TestSenderAuthenticationInHeaderBlock: SPF, DKIM and DMARC outcomes,
// checked against the loopback DNS server, are what the coordinator reads
// in the report's header block; only authenticated reporters get mail.
func TestSenderAuthenticationInHeaderBlock(t *testing.T) {
	w := newAuthWorld(t)
	cora := w.team[0]
	tampered := w.signed(authReport("bob@dkim.example", "DKIM-TAMPERED"))
	tampered = bytes.Replace(tampered, []byte("The parser overflows."), []byte("The parser is fine.."), 1)
	cases := []struct {
		name, helo, mailFrom, from string
		raw                        []byte
		want                       []string
		acked                      bool
	}{
		{"dkim pass", "client.test", "bounces@elsewhere.example", "alice@dkim.example", w.signed(authReport("alice@dkim.example", "DKIM-GOOD")),
			[]string{"dkim=pass header.d=dkim.example", "dmarc=pass header.from=dkim.example", "reporter authenticated (DMARC pass for dkim.example)"}, true},
		{"dkim fail", "client.test", "bounces@elsewhere.example", "bob@dkim.example", tampered,
			[]string{"dkim=fail", "header.d=dkim.example", "dmarc=fail header.from=dkim.example", "reporter NOT acknowledged"}, false},
		{"spf pass", "mx.spf.example", "carol@spf.example", "carol@spf.example", authReport("carol@spf.example", "SPF-GOOD"),
			[]string{"spf=pass smtp.mailfrom=carol@spf.example", "spf=pass smtp.helo=mx.spf.example", "dkim=none", "dmarc=pass header.from=spf.example", "reporter authenticated"}, true},
		{"spf fail", "client.test", "dave@spffail.example", "dave@spffail.example", authReport("dave@spffail.example", "SPF-BAD"),
			[]string{"spf=fail smtp.mailfrom=dave@spffail.example", "dmarc=fail header.from=spffail.example", "reporter NOT acknowledged"}, false},
		// SPF passes for the attacker's own envelope, but the From is forged.
		{"forged from", "mx.spf.example", "attacker@spf.example", "ceo@victim.example", authReport("ceo@victim.example", "FORGED"),
			[]string{"spf=pass smtp.mailfrom=attacker@spf.example", "dmarc=fail header.from=victim.example", "reporter NOT acknowledged"}, false},
	}
	for _, c := range cases {
		w.sendAs(c.helo, c.mailFrom, c.raw)
	}
	for _, c := range cases {
		token := string(bytes.TrimSpace(c.raw[bytes.LastIndex(c.raw, []byte(". "))+2:]))
		got := w.waitPlain(cora, "bug "+token)
		for _, want := range c.want {
			if !strings.Contains(got, want) {
				t.Errorf("%s: Cora's copy lacks %q:\n%s", c.name, want, got)
			}
		}
		if !strings.Contains(got, "Authentication-Results: example.org; ") {
			t.Errorf("%s: no Authentication-Results line:\n%s", c.name, got)
		}
	}
	// Every report routed: the acknowledgements are queued by then.
	deadline := time.Now().Add(30 * time.Second)
	for strings.Contains(cvdtest.MustRun(t, w.dir, nil, "spool", "list", "--config", w.cfg), " new") {
		if time.Now().After(deadline) {
			t.Fatal("reports still in the spool")
		}
		time.Sleep(200 * time.Millisecond)
	}
	queue := cvdtest.MustRun(t, w.dir, nil, "queue", "list", "--all", "--config", w.cfg)
	for _, c := range cases {
		if got := strings.Contains(queue, c.from); got != c.acked {
			t.Errorf("%s: mail queued for %s: %v, want %v\n%s", c.name, c.from, got, c.acked, queue)
		}
		if strings.Contains(queue, c.mailFrom) && c.mailFrom != c.from {
			t.Errorf("%s: mail queued for the envelope sender %s:\n%s", c.name, c.mailFrom, queue)
		}
	}
	for _, c := range cases {
		if c.acked {
			if ack := waitMail(t, w.dir, c.from, 1)[0]; !strings.Contains(string(ack), "Your security report was received") {
				t.Errorf("%s: acknowledgement:\n%s", c.name, ack)
			}
		}
	}
	if n := len(outboxMail(t, w.dir)["ceo@victim.example"]); n != 0 {
		t.Errorf("the forged From got %d messages", n)
	}
}

// TestSignedReportByPinnedKeyAcknowledged: with no SPF or DMARC for her
// domain, a report signed by the key pinned for Rita is acknowledged;
// an unsigned one in her name is not.
func TestSignedReportByPinnedKeyAcknowledged(t *testing.T) {
	w := newAuthWorld(t)
	rita := gpgtest.New(t, "Rita Reporter", "rita@nodns.example", "never")
	projectPub, _ := os.ReadFile(filepath.Join(w.dir, "keys/project.pub.asc"))
	rita.Import(projectPub)
	keyFile := filepath.Join(t.TempDir(), "rita.asc")
	os.WriteFile(keyFile, rita.Pub, 0o600)
	cvdtest.MustRun(t, w.dir, nil, "member", "key", rita.Email, "--key", keyFile, "--config", w.cfg)

	w.sendAs("client.test", rita.Email, authReport(rita.Email, "UNSIGNED-RITA"))
	w.waitPlain(w.team[0], "bug UNSIGNED-RITA", "reporter NOT acknowledged")
	time.Sleep(time.Second)
	if n := len(outboxMail(t, w.dir)[rita.Email]); n != 0 {
		t.Errorf("the unsigned report in Rita's name got her %d messages", n)
	}
	w.sendAs("client.test", rita.Email, w.signedPost(rita, "security@example.org", "<signed-rita@test>",
		"Content-Type: text/plain\r\n\r\nThe parser overflows. SIGNED-RITA\r\n"))
	w.waitPlain(w.team[0], "SIGNED-RITA", "reporter authenticated (good signature by the pinned key")
	waitMail(t, w.dir, rita.Email, 1)
	time.Sleep(time.Second)
	var acks []string
	for _, m := range outboxMail(t, w.dir)[rita.Email] {
		if plain, _, err := rita.Decrypt(m); err == nil && strings.Contains(plain, "Your security report was received") {
			acks = append(acks, plain)
		}
	}
	if len(acks) != 1 || !strings.Contains(acks[0], "incident 2026-002") {
		t.Errorf("Rita's acknowledgements, want one for 2026-002 (the signed report):\n%s", strings.Join(acks, "\n=====\n"))
	}
}

// TestNoReceiptsToUnauthenticatedSenders: posts to an incident list in a
// forged name (SPF fails for it) are held or refused as before, but the
// forged address gets neither the held-post receipt nor the undecryptable
// notice.
func TestNoReceiptsToUnauthenticatedSenders(t *testing.T) {
	w := newAuthWorld(t)
	cora := w.team[0]
	w.sendAs("mx.spf.example", "carol@spf.example", authReport("carol@spf.example", "SPF-GOOD"))
	id := regexp.MustCompile(`security\+(\d{4}-\d{3})@`).FindSubmatch(waitMail(t, w.dir, "carol@spf.example", 1)[0])
	if id == nil {
		t.Fatal("no incident ID in the acknowledgement")
	}
	list := "security+" + string(id[1]) + "@example.org"
	victim := "ceo@victim.example"
	w.send(victim, list, []byte("From: <"+victim+">\r\nTo: "+list+"\r\nSubject: forged\r\nMessage-ID: <forged1@test>\r\n\r\nFORGED-POST\r\n"))
	ursula := gpgtest.New(t, "Ursula", victim, "never")
	armored := ursula.EncryptSign([]byte("Content-Type: text/plain\r\n\r\nSECRET-U\r\n"), ursula.Fpr)
	w.send(victim, list, []byte(gpgtest.PGPMIME("From: <"+victim+">\r\nTo: "+list+"\r\nSubject: ...\r\nMessage-ID: <forged2@test>\r\n", armored)))
	w.waitPlain(cora, "FORGED-POST", "spf=fail smtp.mailfrom="+victim)
	w.waitPlain(cora, "could not be decrypted", victim)
	time.Sleep(time.Second)
	if got := outboxMail(t, w.dir)[victim]; len(got) != 0 {
		t.Errorf("the forged sender got %d messages:\n%s", len(got), got[0])
	}
}
