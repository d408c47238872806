package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// TestRelayExpiryBounceFailsTheRow is a relay that gave up on a message
// after retrying: Postfix's real expiry bounce says "Action: failed" with
// a 4.x.x status (RFC 3464: failed is final, whatever the code). The
// queue row must end failed and the coordinators be told.
func TestRelayExpiryBounceFailsTheRow(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	addTeam(t, dir, cfg, cora)

	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	defer s.stop(t)
	reporter := "rita@reporter.example"
	report := filepath.Join(t.TempDir(), "report.eml")
	os.WriteFile(report, []byte("From: Rita <"+reporter+">\r\nTo: security@example.org\r\nSubject: crash\r\nMessage-ID: <r1@reporter.example>\r\n\r\nThe parser crashes.\r\n"), 0o600)
	if out, err := swaks(t, "--server", s.addr, "--from", reporter, "--to", "security@example.org", "--data", "@"+report); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	outbox := filepath.Join(dir, "outbox")
	ack := waitOutboxTo(t, dir, reporter, s.Logs)
	if ack.Token == "" {
		t.Fatalf("acknowledgement without a VERP return path:\n%s", ack.Raw)
	}
	returnPath := "security+bounce-" + ack.Token + "@example.org"

	// The real Postfix bounce, addressed to this copy's return path and
	// naming its recipient.
	sample, err := os.ReadFile(filepath.Join("..", "..", "mailserver", "testdata", "dsn", "postfix", "expired-4.4.1.eml"))
	if err != nil {
		t.Fatal(err)
	}
	dsn := strings.NewReplacer("security+bounce-3f9a1c2e7b@lists.example.org", returnPath,
		"security+2Bbounce-3f9a1c2e7b@lists.example.org", returnPath,
		"team@downstream.example", reporter).Replace(string(sample))
	dsnFile := filepath.Join(t.TempDir(), "dsn.eml")
	os.WriteFile(dsnFile, []byte(dsn), 0o600)
	if out, err := swaks(t, "--server", s.addr, "--from", "", "--to", returnPath, "--data", "@"+dsnFile); err != nil {
		t.Fatalf("swaks bounce: %v\n%s", err, out)
	}

	failed := regexp.MustCompile(`(?m)^.*` + regexp.QuoteMeta(reporter) + ` +failed .*4\.4\.1.*$`)
	var queue string
	waitFor(t, "the acknowledgement's row failed with 4.4.1", func() bool {
		_, queue, _ = runCVD(t, dir, nil, "queue", "list", "--config", cfg, "--all")
		return failed.MatchString(queue)
	}, func() string { return queue + "\n" + s.Logs() })

	var told bool
	waitFor(t, "a notice to the coordinator naming the failed recipient", func() bool {
		for _, m := range cvdtest.Outbox(t, outbox) {
			if m.DeliveredTo != cora.Email {
				continue
			}
			plain, _, err := cora.Decrypt(m.Raw)
			if err == nil && strings.Contains(plain, reporter) && strings.Contains(plain, "4.4.1") {
				told = true
			}
		}
		return told
	}, s.Logs)
}
