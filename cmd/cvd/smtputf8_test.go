package main

import (
	"net"
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

const idnReporter = "用户@users.example"

// sendUTF8Report sends a report from idnReporter with the SMTPUTF8
// parameter, as an MX in front of cvd hands it over.
func sendUTF8Report(t *testing.T, addr string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("SMTPUTF8"); !ok {
		t.Fatal("cvd does not offer SMTPUTF8")
	}
	if err := c.Mail(idnReporter, &smtp.MailOptions{UTF8: true}); err != nil {
		t.Fatalf("MAIL FROM:<%s> SMTPUTF8: %v", idnReporter, err)
	}
	if err := c.Rcpt("security@example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("From: Yònghù <" + idnReporter + ">\r\nTo: security@example.org\r\nSubject: 解析器崩溃\r\nMessage-ID: <u1@users.example>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe parser crashes on empty input.\r\n"))
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
}

// TestInternationalisedReport is a report from an internationalised
// address (RFC 6531): cvd takes it with SMTPUTF8, opens an incident, the
// team gets it, and the reporter's acknowledgement goes out.
func TestInternationalisedReport(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	projectPub, _ := os.ReadFile(filepath.Join(dir, "keys/project.pub.asc"))
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	cora.Import(projectPub)
	os.WriteFile(filepath.Join(dir, "keys/cora.asc"), cora.Pub, 0o600)
	cvdtest.AppendConfig(t, cfg, "\n[[embargo.team]]\nname = \"Cora\"\nemail = \"cora@example.org\"\nkey_file = \"keys/cora.asc\"\n")
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	defer s.stop(t)
	sendUTF8Report(t, s.addr)

	outbox := filepath.Join(dir, "outbox")
	var ack, report []byte
	deadline := time.Now().Add(time.Minute)
	for ack == nil || report == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no acknowledgement to %s and report to the team in the outbox\n%s", idnReporter, s.Logs())
		}
		time.Sleep(50 * time.Millisecond)
		for _, m := range cvdtest.Outbox(t, outbox) {
			switch m.DeliveredTo {
			case idnReporter:
				ack = m.Raw
			case cora.Email:
				report = m.Raw
			}
		}
	}
	if !regexp.MustCompile(`incident \d{4}-\d{3}`).Match(ack) {
		t.Errorf("acknowledgement:\n%s", ack)
	}
	plain, _, err := cora.Decrypt(report)
	if err != nil || !strings.Contains(plain, "The parser crashes") || !strings.Contains(plain, idnReporter) {
		t.Errorf("the team's copy (%v):\n%s", err, plain)
	}
}

// TestSMTPUTF8Delivery: the acknowledgement to an internationalised
// address goes out with SMTPUTF8 to a relay that offers it; a relay that
// does not gets nothing and the row fails at once with the reason.
func TestSMTPUTF8Delivery(t *testing.T) {
	for _, offers := range []bool{true, false} {
		t.Run(map[bool]string{true: "relay offers SMTPUTF8", false: "relay without SMTPUTF8"}[offers], func(t *testing.T) {
			relay := &recordingRelay{}
			srv := smtp.NewServer(relay)
			srv.Domain = "relay.example"
			srv.EnableSMTPUTF8 = offers
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(ln)
			defer srv.Close()

			dir, cfg := initDir(t, "example.org")
			b, _ := os.ReadFile(cfg)
			b = []byte(strings.Replace(string(b), `mode = "outbox"`, `mode = "smarthost"`+"\nsmarthost = \""+ln.Addr().String()+"\"", 1))
			os.WriteFile(cfg, []byte(strings.Replace(string(b), `tls = "starttls"`, `tls = "none"`, 1)), 0o600)
			s := startCVD(t, t.TempDir(), nil, "--config", cfg)
			defer s.stop(t)
			sendUTF8Report(t, s.addr)

			var queue string
			failed := regexp.MustCompile(`(?m)` + regexp.QuoteMeta(idnReporter) + ` +failed +1 .*SMTPUTF8`)
			deadline := time.Now().Add(time.Minute)
			for {
				if offers && relay.got(idnReporter) {
					break
				}
				if !offers {
					_, queue, _ = runCVD(t, dir, nil, "queue", "list", "--config", cfg, "--all")
					if failed.MatchString(queue) {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("waited a minute for the acknowledgement's outcome\n%s\n%s", queue, s.Logs())
				}
				time.Sleep(50 * time.Millisecond)
			}
			relay.mu.Lock()
			defer relay.mu.Unlock()
			if offers && !relay.utf8[idnReporter] {
				t.Error("the acknowledgement went out without SMTPUTF8")
			}
			if !offers && len(relay.rcpts) != 0 {
				t.Errorf("a relay without SMTPUTF8 got %v", relay.rcpts)
			}
		})
	}
}
