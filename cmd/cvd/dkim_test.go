package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cvd-project/cvd/internal/dkimtest"
	"github.com/cvd-project/cvd/internal/dnstest"
)

// zoneRecords are the records 'cvd dns' prints, without comments.
func zoneRecords(t *testing.T, dir, cfg string) []string {
	t.Helper()
	code, out, errOut := runCVD(t, dir, nil, "dns", "--config", cfg)
	if code != 0 {
		t.Fatalf("cvd dns: exit %d\n%s%s", code, out, errOut)
	}
	var rs []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, ";") {
			rs = append(rs, l)
		}
	}
	return rs
}

// TestEveryOutgoingMessageIsDKIMSigned: every message in the outbox (the
// announcement copies with their per-subscriber headers, subscription
// confirmations, acknowledgements, sealed list copies) carries an RSA and an Ed25519 DKIM
// signature with d= the From domain that python3-dkim verifies against
// the records 'cvd dns' printed, served by a loopback DNS server; the
// clear-signed announcement still verifies with gpg.
func TestEveryOutgoingMessageIsDKIMSigned(t *testing.T) {
	dkimtest.Available(t)
	w := newAnnWorld(t)
	dns := dnstest.Start(t, zoneRecords(t, w.dir, w.cfg)...)

	w.send(w.cora.Email, "announce@example.org", inlineSigned(w.cora, "From: Cora Coordinator <cora@example.org>\r\nTo: announce@example.org\r\n"+
		"Subject: [SECURITY] libexample 1.2.4\r\nMessage-ID: <ann-dkim@example.org>\r\n", "x-list: announce\n\nUpgrade to 1.2.4.\n"))
	waitMail(t, w.dir, samAddr, 1)
	w.send("rita@reporter.example", "announce+subscribe@example.org", "From: Rita <rita@reporter.example>\r\nTo: announce+subscribe@example.org\r\nSubject: subscribe\r\n\r\n")
	w.send("rita@reporter.example", "security@example.org", "From: Rita <rita@reporter.example>\r\nTo: security@example.org\r\nSubject: crash in parser\r\n"+
		"Message-ID: <crash-dkim@reporter.example>\r\n\r\nA crash.\r\n")
	var id []byte
	for _, m := range waitMail(t, w.dir, "rita@reporter.example", 2) {
		if m := regexp.MustCompile(`incident (\d{4}-\d{3})`).FindSubmatch(m); m != nil {
			id = m[1]
		}
	}
	if id == nil {
		t.Fatalf("no acknowledgement\n%s", outboxListing(t, w.dir))
	}
	// A list copy: Dan joins the incident and Rita writes again in its
	// thread; Dan gets it sealed from the list address.
	keyFile := filepath.Join(t.TempDir(), "dan.asc")
	os.WriteFile(keyFile, w.dan.Pub, 0o600)
	w.cli(0, "member", "add", string(id), w.dan.Email, "--role", "coordinator", "--key", keyFile)
	w.send("rita@reporter.example", "security@example.org", "From: Rita <rita@reporter.example>\r\nTo: security@example.org\r\nSubject: Re: crash in parser\r\n"+
		"In-Reply-To: <crash-dkim@reporter.example>\r\nMessage-ID: <crash-dkim-2@reporter.example>\r\n\r\nMore details.\r\n")
	waitMail(t, w.dir, w.dan.Email, 1)
	w.drained()

	kinds := map[string]bool{}
	n := 0
	for rcpt, msgs := range outboxMail(t, w.dir) {
		for _, m := range msgs {
			n++
			report, ok := dkimtest.Verify(t, dns.Addr, m)
			if !ok || strings.Count(report, " pass") != 2 || !strings.Contains(report, "a=rsa-sha256 pass") || !strings.Contains(report, "a=ed25519-sha256 pass") {
				t.Errorf("copy to %s does not verify:\n%s\n%.800s", rcpt, report, m)
			}
			if !strings.Contains(report, "d=example.org") || !regexp.MustCompile(`(?m)^From: .*@example\.org>?\r?$`).Match(m) {
				t.Errorf("copy to %s: signature not aligned with From:\n%s", rcpt, report)
			}
			switch {
			case bytes.Contains(m, []byte("multipart/signed")):
				kinds["announcement"] = true
				if rcpt == samAddr {
					verifySignedByProject(t, w, m)
				}
			case rcpt == "rita@reporter.example" && bytes.Contains(m, []byte("announce+confirm-")):
				kinds["confirmation"] = true
			case rcpt == "rita@reporter.example":
				kinds["acknowledgement"] = true
			case rcpt == w.dan.Email && bytes.Contains(m, []byte("multipart/encrypted")) && bytes.Contains(m, []byte("security+"+string(id)+"@example.org")):
				kinds["list copy"] = true
			}
		}
	}
	for _, k := range []string{"announcement", "confirmation", "acknowledgement", "list copy"} {
		if !kinds[k] {
			t.Errorf("no %s in the outbox (%d messages)", k, n)
		}
	}
	w.s.stop(t)
}

// verifySignedByProject checks the multipart/signed m with gpg --verify
// over its first part, as Cora (who holds the project key).
func verifySignedByProject(t *testing.T, w *annWorld, m []byte) {
	t.Helper()
	if _, status, err := w.cora.VerifyMultipartSigned(m); err != nil || !strings.Contains(status, "VALIDSIG "+w.projectFpr) {
		t.Errorf("gpg --verify of the DKIM-signed announcement: %v\n%s", err, status)
	}
}
