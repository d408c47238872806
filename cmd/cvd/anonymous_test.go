package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cvd-project/cvd/internal/gpgtest"
)

// TestAnonymousReporter: with "cvd incident set ID reporter anonymous", a
// downstream's copies of the reporter's posts (new ones, and the report
// in the backlog) and the x-list-members reply to the downstream carry
// neither the reporter's address, name, domain, key fingerprint nor the
// key the report came with; the coordinator still sees who wrote.
func TestAnonymousReporter(t *testing.T) {
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	w := newTrustWorld(t, cora)
	cora.Import(w.projectPub)
	rita := w.person("Rita Reporter", "rita@reporter.example")
	deb := w.person("Debian Security", "security@debian.example")
	w.start()

	// A signed, encrypted report with Rita's key inside.
	inner := "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n" +
		"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nREPORT-TEXT: overflow in parse()\r\n" +
		"--B\r\nContent-Type: application/pgp-keys; name=\"key.asc\"\r\n\r\n" + strings.ReplaceAll(string(rita.Pub), "\n", "\r\n") + "\r\n--B--\r\n"
	id := w.report(rita.Email, rita.Email, gpgtest.PGPMIME("From: Rita Reporter <rita@reporter.example>\r\nTo: security@example.org\r\n"+
		"Subject: ...\r\nMessage-ID: <report1@reporter.example>\r\n", rita.EncryptSign([]byte(inner), w.projectFpr)))
	list := "security+" + id + "@example.org"
	if out := w.cli("incident", "set", id, "reporter", "anonymous"); !strings.Contains(out, "anonymous") {
		t.Errorf("incident set reporter anonymous: %s", out)
	}
	keyFile := filepath.Join(t.TempDir(), "deb.asc")
	os.WriteFile(keyFile, deb.Pub, 0o600)
	w.cli("member", "add", id, deb.Email, "--role", "downstream", "--key", keyFile, "--name", deb.Name)

	// A new post by the reporter, a late downstream's backlog, and the
	// member list the downstream asks for.
	w.send(rita.Email, list, w.signedPost(rita, "Rita Reporter <rita@reporter.example>", list, "followup1@reporter.example", "FOLLOWUP-TEXT: also in parse_body()"))
	w.send(cora.Email, list, w.signedPost(cora, "Cora Coordinator <cora@example.org>", list, "backlog1@example.org", "x-list: "+id+"\nx-send-backlog: "+deb.Email))
	w.send(deb.Email, list, w.signedPost(deb, "Debian Security <security@debian.example>", list, "members1@debian.example", "x-list: "+id+"\nx-list-members"))

	plains := readable(deb, w.mail(deb.Email))
	for _, want := range []string{"REPORT-TEXT", "FOLLOWUP-TEXT", "x-list-members: ok"} {
		if !anyContains(plains, want) {
			t.Errorf("the downstream did not get %q (%d messages)", want, len(plains))
		}
	}
	for _, p := range plains {
		for _, leak := range []string{rita.Email, "reporter.example", "Rita", rita.Fpr, "BEGIN PGP PUBLIC KEY BLOCK"} {
			if strings.Contains(p, leak) {
				t.Errorf("the downstream's copy shows %q:\n%.3000s", leak, p)
			}
		}
		if strings.Contains(p, "FOLLOWUP-TEXT") && !strings.Contains(p, "From:      the reporter (anonymous)") {
			t.Errorf("the header block does not say who wrote:\n%.1500s", p)
		}
		if strings.Contains(p, "x-list-members: ok") && !strings.Contains(p, "(anonymous) reporter active") {
			t.Errorf("the member list does not show the anonymous reporter:\n%s", p)
		}
	}
	// The visible header of the copies too.
	for _, m := range w.mail(deb.Email) {
		if strings.Contains(string(m), "Rita") || strings.Contains(string(m), "reporter.example") {
			t.Errorf("a copy's visible header shows the reporter:\n%.1500s", m)
		}
	}
	// The coordinator still sees who wrote.
	if !anyContains(readable(cora, w.mail(cora.Email)), "From:      Rita Reporter <rita@reporter.example>") {
		t.Errorf("the coordinator's copy does not name the reporter")
	}
	w.s.stop(t)
}
