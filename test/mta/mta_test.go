// Package mta runs cvd in its most common deployment: behind and in front
// of Postfix. Two private Postfix instances run on loopback ports (needs
// root and the postfix user; skipped otherwise unless CI is set):
//
//   - "mx", the project's MX for example.org, configured with the blocks
//     of the README's section "Behind an MTA (Postfix)", read from the
//     README itself (only ports and paths changed): it hands security*@
//     and announce*@ to cvd, delivers the domain's other mailboxes
//     (cora@example.org, the coordinator) into Maildirs, and is cvd's
//     smarthost;
//   - "world", the rest of the internet, where mx relays everything else
//     (relayhost): Maildirs for reporter.example and downstream.example,
//     refusing mailboxes it does not have.
//
// cvd (the built binary) runs with the README's cvd.toml lines.
package mta

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

func TestMain(m *testing.M) { cvdtest.Main(m, cvdtest.Race) }

const idnReporter = "用户@reporter.example"

// world's mailboxes: address -> Maildir under its virtual_mailbox_base.
var worldBoxes = map[string]string{
	"rita@reporter.example":   "reporter.example/rita/",
	idnReporter:               "reporter.example/yonghu/",
	"big@reporter.example":    "reporter.example/big/",
	"r1@reporter.example":     "reporter.example/r1/",
	"r2@reporter.example":     "reporter.example/r2/",
	"r3@reporter.example":     "reporter.example/r3/",
	"team@downstream.example": "downstream.example/team/",
}

const coraBox = "example.org/cora/" // in the README's virtual_mailboxes

func TestBehindPostfix(t *testing.T) {
	bin, postfixUID := requirePostfix(t)
	blocks := readmeBlocks(t)
	cvdAddr := freeAddr(t)
	cvdHost, cvdPort, _ := net.SplitHostPort(cvdAddr)

	// The rest of the internet.
	var boxes strings.Builder
	for a, p := range worldBoxes {
		fmt.Fprintf(&boxes, "%s %s\n", a, p)
	}
	world := newPostfix(t, bin, postfixUID, "world", "mx.world.example", `# The rest of the internet (test only).
smtputf8_enable = yes
virtual_mailbox_domains = reporter.example, downstream.example
virtual_mailbox_maps = texthash:/etc/postfix/mailboxes
virtual_mailbox_base = /var/mail/vhosts
virtual_uid_maps = static:5000
virtual_gid_maps = static:5000
`, map[string]string{"mailboxes": boxes.String()})
	world.start(t)

	// The project's MX, exactly as the README says, with the ports and
	// paths of this test.
	r := strings.NewReplacer("[127.0.0.1]:2525", "["+cvdHost+"]:"+cvdPort)
	mx := newPostfix(t, bin, postfixUID, "mx", "mx.example.org",
		r.Replace(blocks["/etc/postfix/main.cf"])+"\n# Everything not for example.org goes to the rest of the internet (test only).\nrelayhost = ["+strings.Replace(world.Addr, ":", "]:", 1)+"\n",
		map[string]string{
			"virtual_mailboxes": blocks["/etc/postfix/virtual_mailboxes"],
			"transport":         r.Replace(blocks["/etc/postfix/transport"]),
		})
	mx.start(t)

	// cvd, with the README's lines, its team and its roster.
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	team := gpgtest.New(t, "Downstream Security", "team@downstream.example", "never")
	ghost := gpgtest.New(t, "Gone Downstream", "nobody@downstream.example", "never")
	dir, cfg := cvdtest.InitDir(t, "example.org")
	applyTOML(t, cfg, strings.NewReplacer(`"127.0.0.1:2525"`, `"`+cvdAddr+`"`, `"127.0.0.1:25"`, `"`+mx.Addr+`"`).Replace(blocks["/etc/cvd/cvd.toml"]))
	projectPub, err := os.ReadFile(filepath.Join(dir, "keys", "project.pub.asc"))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []*gpgtest.User{cora, team, ghost} {
		u.Import(projectPub)
		if err := os.WriteFile(filepath.Join(dir, "keys", strings.Split(u.Email, "@")[0]+".asc"), u.Pub, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cvdtest.AppendConfig(t, cfg, `[[embargo.team]]
name = "Cora"
email = "cora@example.org"
key_file = "keys/cora.asc"

[[embargo.roster]]
name = "Downstream"
email = "team@downstream.example"
key_file = "keys/team.asc"

[[embargo.roster]]
name = "Gone"
email = "nobody@downstream.example"
key_file = "keys/nobody.asc"`)
	s := cvdtest.Start(t, dir, nil, "--config", cfg)
	waitFor(t, "cvd to learn Postfix's SIZE", time.Minute, func() bool {
		return strings.Contains(s.Logs(), "smarthost message size limit")
	}, s.Logs)
	queue := func(all bool) string {
		args := []string{"queue", "list", "--config", cfg}
		if all {
			args = append(args, "--all")
		}
		return cvdtest.MustRun(t, dir, nil, args...)
	}
	diag := func() string { return queue(true) + "\n" + s.Logs() + "\n" + mx.log() }

	// coraReads waits for a message in Cora's Maildir (at mx) after the
	// first skip whose decrypted text contains all of want.
	coraReads := func(t *testing.T, skip int, want ...string) string {
		t.Helper()
		var found string
		var seen []string
		waitFor(t, fmt.Sprintf("a sealed message to cora@example.org containing %q", want), time.Minute, func() bool {
			seen = seen[:0]
			ms := mx.mailbox(t, coraBox)
			for _, m := range ms[min(skip, len(ms)):] {
				if !bytes.Contains(m, []byte("-----BEGIN PGP MESSAGE-----")) {
					continue
				}
				plain, status, err := cora.Decrypt(m)
				if err != nil {
					seen = append(seen, fmt.Sprintf("(cannot decrypt: %v)\n%s", err, status))
					continue
				}
				seen = append(seen, plain)
				ok := true
				for _, w := range want {
					ok = ok && strings.Contains(plain, w)
				}
				if ok {
					found = plain
					return true
				}
			}
			return false
		}, func() string { return "Cora's mailbox, decrypted:\n" + strings.Join(seen, "\n----\n") + "\n" + diag() })
		return found
	}
	var incident string

	t.Run("the MX validates recipients and keeps the domain's other mailboxes", func(t *testing.T) {
		c := dial(t, mx.Addr)
		if err := c.Mail("someone@reporter.example", nil); err != nil {
			t.Fatal(err)
		}
		for _, rcpt := range []string{"nobody@example.org", "securityx@example.org"} {
			var se *smtp.SMTPError
			if err := c.Rcpt(rcpt, nil); !errors.As(err, &se) || se.Code != 550 {
				t.Errorf("RCPT TO:<%s> at the MX: %v, want 550 during the session", rcpt, err)
			}
		}
		for _, rcpt := range []string{"security+2026-999@example.org", "announce+subscribe@example.org", "security+bounce-abc@example.org"} {
			if err := c.Rcpt(rcpt, nil); err != nil {
				t.Errorf("RCPT TO:<%s> at the MX: %v", rcpt, err)
			}
		}
		c.Reset()
		c.Close()
		send(t, mx.Addr, "someone@reporter.example", "cora@example.org", nil,
			"From: <someone@reporter.example>\r\nTo: cora@example.org\r\nSubject: lunch?\r\nMessage-ID: <lunch@reporter.example>\r\n\r\nNot a report.\r\n")
		got := mx.waitMailbox(t, coraBox, 1, diag)
		if !bytes.Contains(got[0], []byte("Subject: lunch?")) {
			t.Errorf("Cora's mailbox:\n%s", got[0])
		}
	})

	t.Run("a report in through Postfix, the acknowledgement out through it", func(t *testing.T) {
		send(t, mx.Addr, "rita@reporter.example", "security@example.org", nil,
			"From: Rita <rita@reporter.example>\r\nTo: security@example.org\r\nSubject: crash\r\nMessage-ID: <r1@reporter.example>\r\n\r\nThe parser crashes on empty input.\r\n")
		ack := world.waitMailbox(t, worldBoxes["rita@reporter.example"], 1, diag)[0]
		m := regexp.MustCompile(`incident (\d{4}-\d{3})`).FindSubmatch(ack)
		if m == nil || header(ack, "Auto-Submitted") != "auto-replied" || !regexp.MustCompile(`<security\+\d{4}-\d{3}@example\.org>`).MatchString(header(ack, "From")) {
			t.Fatalf("the acknowledgement in Rita's Maildir:\n%s", ack)
		}
		incident = string(m[1])
		if rp := header(ack, "Return-Path"); !regexp.MustCompile(`^<security\+bounce-[a-z2-7]+@example\.org>$`).MatchString(rp) {
			t.Errorf("the acknowledgement's return path %q is not cvd's VERP address", rp)
		}
		coraReads(t, 0, "The parser crashes on empty input.")
	})

	t.Run("an internationalised report reaches the team and is acknowledged", func(t *testing.T) {
		send(t, mx.Addr, idnReporter, "security@example.org", &smtp.MailOptions{UTF8: true},
			"From: Yònghù <"+idnReporter+">\r\nTo: security@example.org\r\nSubject: 解析器崩溃\r\nMessage-ID: <u1@reporter.example>\r\n"+
				"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDer Parser stürzt ab: 解析器崩溃.\r\n")
		ack := world.waitMailbox(t, worldBoxes[idnReporter], 1, diag)[0]
		if !regexp.MustCompile(`incident \d{4}-\d{3}`).Match(ack) {
			t.Errorf("the acknowledgement in %s's Maildir:\n%s", idnReporter, ack)
		}
		coraReads(t, 0, "Der Parser stürzt ab: 解析器崩溃.", idnReporter)
	})

	t.Run("a pre-notification to a mailbox that does not exist", func(t *testing.T) {
		if incident == "" {
			t.Skip("no incident: the first report failed")
		}
		cli := func(args ...string) string {
			t.Helper()
			return cvdtest.MustRun(t, dir, nil, append(append([]string{"incident"}, args...), "--config", cfg)...)
		}
		coraBefore := len(mx.mailbox(t, coraBox))
		date := time.Now().UTC().Add(72 * time.Hour).Truncate(time.Hour)
		cli("confirm", incident)
		cli("set", incident, "title", "Parser crash on empty input")
		cli("set", incident, "description", "An empty input file crashes the parser.")
		cli("versions", incident, "libexample", "--introduced", "1.0", "--fixed", "1.2.3")
		cli("embargo", incident, date.Format("2006-01-02T15:04Z"))
		if out := cli("notify", incident); !strings.Contains(out, "nobody@downstream.example") {
			t.Errorf("notify: %s", out)
		}
		// The downstream that exists gets its notice through both
		// Postfix instances.
		pre := world.waitMailbox(t, worldBoxes["team@downstream.example"], 1, diag)[0]
		if plain, _, err := team.Decrypt(pre); err != nil || !strings.Contains(plain, date.Format("2006-01-02 15:04 UTC")) {
			t.Errorf("the pre-notification (%v):\n%s", err, plain)
		}
		// The one that does not: the world refuses it to the MX, which
		// had accepted it from cvd and bounces it to cvd's return path.
		failed := regexp.MustCompile(`(?m)^\d+\s+nobody@downstream\.example\s+failed\s.*5\.1\.1`)
		var q string
		waitFor(t, "the row of nobody@downstream.example failed with 5.1.1", time.Minute, func() bool {
			q = queue(true)
			return failed.MatchString(q)
		}, diag)
		if !regexp.MustCompile(`msg=bounce .*status=5\.1\.1`).MatchString(s.Logs()) {
			t.Errorf("the row failed, but not by Postfix's bounce:\n%s", s.Logs())
		}
		coraReads(t, coraBefore, "nobody@downstream.example", "5.1.1")
	})

	t.Run("an oversize report is refused with a clear reply", func(t *testing.T) {
		// Larger than the MX's limit: refused during the session.
		c := dial(t, mx.Addr)
		var se *smtp.SMTPError
		if err := c.Mail("big@reporter.example", &smtp.MailOptions{Size: 40 << 20}); !errors.As(err, &se) || se.Code != 552 || !strings.Contains(se.Message, "size") {
			t.Errorf("MAIL FROM with SIZE=40MiB at the MX: %v, want 552 naming the size", err)
		}
		c.Close()
		// Larger than cvd's 25 MiB, within the MX's 35 MiB: the MX takes
		// it, cvd does not, and the sender gets Postfix's bounce naming
		// the limit.
		body := strings.Repeat(strings.Repeat("A", 76)+"\r\n", (26<<20)/78)
		send(t, mx.Addr, "big@reporter.example", "security@example.org", nil,
			"From: <big@reporter.example>\r\nTo: security@example.org\r\nSubject: huge report\r\nMessage-ID: <big@reporter.example>\r\n\r\n"+body)
		bounce := world.waitMailbox(t, worldBoxes["big@reporter.example"], 1, diag)[0]
		if !bytes.Contains(bounce, []byte("security@example.org")) || !regexp.MustCompile(`(?i)size limit|5\.3\.4`).Match(bounce) {
			t.Errorf("the bounce to the sender does not name the recipient and the size limit:\n%s", bounce[:min(len(bounce), 4000)])
		}
		if regexp.MustCompile(`msg="message accepted".*from=big@reporter\.example`).MatchString(s.Logs()) {
			t.Errorf("cvd accepted the oversize report")
		}
	})

	t.Run("Postfix stopped for a while: every queued copy delivered once", func(t *testing.T) {
		coraBefore := len(mx.mailbox(t, coraBox))
		mx.stop(t)
		reporters := []string{"r1@reporter.example", "r2@reporter.example", "r3@reporter.example"}
		for i, from := range reporters {
			send(t, s.Addr, from, "security@example.org", nil, fmt.Sprintf(
				"From: <%s>\r\nTo: security@example.org\r\nSubject: report %d\r\nMessage-ID: <outage%d@reporter.example>\r\n\r\nOutage report %d.\r\n", from, i, i, i))
		}
		// Each acknowledgement and each copy to Cora waits in cvd's queue.
		deferred := regexp.MustCompile(`(?m)^(\d+)\s+(\S+)\s+deferred\s+[1-9]`)
		var ids []string
		waitFor(t, "the acknowledgements and Cora's copies deferred while Postfix is down", time.Minute, func() bool {
			ids = ids[:0]
			seen := map[string]int{}
			for _, m := range deferred.FindAllStringSubmatch(queue(false), -1) {
				ids = append(ids, m[1])
				seen[m[2]]++
			}
			for _, r := range reporters {
				if seen[r] != 1 {
					return false
				}
			}
			return seen["cora@example.org"] >= len(reporters)
		}, diag)

		mx.start(t)
		for _, id := range ids {
			cvdtest.MustRun(t, dir, nil, "queue", "retry", id, "--config", cfg)
		}
		waitFor(t, "nothing left to send in cvd's queue and in both Postfix instances", time.Minute, func() bool {
			return !regexp.MustCompile(`(?m)^\d+\s+\S+\s+(queued|sending|deferred)\s`).MatchString(queue(false)) && mx.idle() && world.idle()
		}, diag)
		for _, r := range reporters {
			if got := world.mailbox(t, worldBoxes[r]); len(got) != 1 {
				t.Errorf("%s has %d acknowledgements, want exactly 1", r, len(got))
			}
		}
		got := mx.mailbox(t, coraBox)[coraBefore:]
		if len(got) != len(reporters) {
			t.Errorf("Cora got %d copies of the %d reports sent while Postfix was down, want exactly one each", len(got), len(reporters))
		}
		for i := range reporters {
			coraReads(t, coraBefore, fmt.Sprintf("Outage report %d.", i))
		}
	})
}

// header returns the first value of the header field name of a message
// as Postfix stored it in a Maildir (LF line ends), or "".
func header(raw []byte, name string) string {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	return m.Header.Get(name)
}

func dial(t *testing.T, addr string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Hello("client.reporter.example"); err != nil {
		t.Fatal(err)
	}
	return c
}

// send sends msg from -> to over SMTP as a sender's MTA would, and fails
// unless the server answers 250.
func send(t *testing.T, addr, from, to string, opts *smtp.MailOptions, msg string) {
	t.Helper()
	c := dial(t, addr)
	defer c.Close()
	if err := c.Mail(from, opts); err != nil {
		t.Fatalf("MAIL FROM:<%s> at %s: %v", from, addr, err)
	}
	if err := c.Rcpt(to, nil); err != nil {
		t.Fatalf("RCPT TO:<%s> at %s: %v", to, addr, err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("DATA from %s to %s at %s: %v", from, to, addr, err)
	}
	c.Quit()
}
