package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	addTeam(t, dir, cfg, cora)
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	defer s.stop(t)
	sendUTF8Report(t, s.addr)

	outbox := filepath.Join(dir, "outbox")
	var ack, report []byte
	waitFor(t, "the acknowledgement to "+idnReporter+" and the report to the team in the outbox", func() bool {
		for _, m := range cvdtest.Outbox(t, outbox) {
			switch m.DeliveredTo {
			case idnReporter:
				ack = m.Raw
			case cora.Email:
				report = m.Raw
			}
		}
		return ack != nil && report != nil
	}, s.Logs)
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
			relay, addr := startRelay(t, func(srv *smtp.Server) { srv.EnableSMTPUTF8 = offers })
			dir, cfg := initDir(t, "example.org")
			useSmarthost(t, cfg, addr, "none")
			s := startCVD(t, t.TempDir(), nil, "--config", cfg)
			defer s.stop(t)
			sendUTF8Report(t, s.addr)

			var queue string
			failed := regexp.MustCompile(`(?m)` + regexp.QuoteMeta(idnReporter) + ` +failed +1 .*SMTPUTF8`)
			waitFor(t, "the acknowledgement's outcome", func() bool {
				if offers {
					return relay.got(idnReporter)
				}
				_, queue, _ = runCVD(t, dir, nil, "queue", "list", "--config", cfg, "--all")
				return failed.MatchString(queue)
			}, func() string { return queue + "\n" + s.Logs() })
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
