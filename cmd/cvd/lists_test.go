package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// outboxMail reads the outbox Maildir: Delivered-To address -> messages,
// each address's oldest first.
func outboxMail(t *testing.T, dir string) map[string][][]byte {
	t.Helper()
	out := map[string][][]byte{}
	for _, m := range cvdtest.Outbox(t, filepath.Join(dir, "outbox")) {
		out[m.DeliveredTo] = append(out[m.DeliveredTo], m.Raw)
	}
	return out
}

// outboxListing lists the outbox, for the message of a failing test.
func outboxListing(t *testing.T, dir string) string {
	t.Helper()
	return "outbox:\n" + cvdtest.Listing(cvdtest.Outbox(t, filepath.Join(dir, "outbox")))
}

// TestIncidentListEndToEnd is what an operator and the members do: create
// a list and add members with the CLI, post a gpg-encrypted report with
// swaks, and read the copies cvd delivered to the outbox with gpg.
func TestIncidentListEndToEnd(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	project := filepath.Join(dir, "keys/project.pub.asc")
	projectPub, _ := os.ReadFile(project)

	rita := gpgtest.New(t, "Rita Reporter", "rita@reporter.example", "never")
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	deb := gpgtest.New(t, "Debian Security", "security@debian.example", "never")
	for _, u := range []*gpgtest.User{rita, cora, deb} {
		u.Import(projectPub)
	}
	code, out, errOut := runCVD(t, dir, nil, "list", "create", "parser-bug", "--config", cfg, "--title", "heap overflow")
	if code != 0 || !strings.Contains(out, "security+parser-bug@example.org") {
		t.Fatalf("list create: %d %s%s", code, out, errOut)
	}
	for _, m := range []struct {
		u    *gpgtest.User
		role string
	}{{rita, "reporter"}, {cora, "coordinator"}, {deb, "downstream"}} {
		keyFile := filepath.Join(t.TempDir(), "key.asc")
		os.WriteFile(keyFile, m.u.Pub, 0o600)
		code, out, errOut := runCVD(t, dir, nil, "member", "add", "parser-bug", m.u.Email, "--role", m.role, "--key", keyFile, "--name", m.u.Name, "--config", cfg)
		if code != 0 {
			t.Fatalf("member add %s: %d %s%s", m.u.Email, code, out, errOut)
		}
	}
	// A key for someone else's address is refused.
	keyFile := filepath.Join(t.TempDir(), "key.asc")
	os.WriteFile(keyFile, deb.Pub, 0o600)
	if code, _, errOut := runCVD(t, dir, nil, "member", "add", "parser-bug", "mallory@evil.example", "--role", "observer", "--key", keyFile, "--config", cfg); code != 1 || !strings.Contains(errOut, "no user ID for mallory@evil.example") {
		t.Errorf("foreign key accepted: %d %s", code, errOut)
	}
	code, out, _ = runCVD(t, dir, nil, "member", "list", "parser-bug", "--config", cfg)
	if code != 0 || !regexp.MustCompile(`(?m)^cora@example\.org +coordinator +active +`+cora.Fpr+` `).MatchString(out) {
		t.Errorf("member list:\n%s", out)
	}

	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	inner := "Content-Type: text/plain; charset=utf-8\r\n\r\nThe overflow is in parse_header().\r\n"
	armored := rita.EncryptSign([]byte(inner), regexp.MustCompile(`[0-9A-F]{40}`).FindString(gpgFingerprints(t, project)))
	mail := filepath.Join(t.TempDir(), "post.eml")
	os.WriteFile(mail, []byte("From: Rita Reporter <rita@reporter.example>\r\nTo: security+parser-bug@example.org\r\nSubject: ...\r\n"+
		"Message-ID: <post1@reporter.example>\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"XX\"\r\n\r\n"+
		"--XX\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n"+
		"--XX\r\nContent-Type: application/octet-stream\r\n\r\n"+strings.ReplaceAll(string(armored), "\n", "\r\n")+"\r\n--XX--\r\n"), 0o600)
	if out, err := swaks(t, "--server", s.addr, "--from", rita.Email, "--to", "security+parser-bug@example.org", "--data", "@"+mail); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}

	var got map[string][][]byte
	deadline := time.Now().Add(30 * time.Second)
	for {
		got = outboxMail(t, dir)
		if len(got[cora.Email]) > 0 && len(got[deb.Email]) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(got[rita.Email]) != 0 {
		t.Errorf("the reporter got their own post back")
	}
	for _, u := range []*gpgtest.User{cora, deb} {
		if len(got[u.Email]) != 1 {
			t.Fatalf("%s has %d messages in the outbox, want 1\n%s", u.Email, len(got[u.Email]), outboxListing(t, dir))
		}
		msg := got[u.Email][0]
		if bytes.Contains(msg, []byte("parse_header")) {
			t.Errorf("copy for %s carries the content in clear", u.Email)
		}
		plain, status, err := u.Decrypt(msg)
		if err != nil || !gpgtest.HasStatus(status, "GOODSIG") || !strings.Contains(plain, "parse_header()") || !strings.Contains(plain, "Signature: good by "+rita.Fpr) {
			t.Errorf("%s reading their copy: %v\n%s\n%s", u.Email, err, status, plain)
		}
	}
	// The copies were queued together: the queue, not the outbox (which
	// a late delivery may not have reached), shows there is none for Rita.
	// A copy is written to the outbox before its row is recorded as sent.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, out, _ = runCVD(t, dir, nil, "queue", "list", "--config", cfg, "--all")
		if code == 0 && strings.Count(out, " sent ") >= 2 || time.Now().After(deadline) {
			break
		}
	}
	if code != 0 || strings.Count(out, " sent ") != 2 || strings.Contains(out, rita.Email) {
		t.Errorf("queue list after delivery (want two copies sent, none for %s):\n%s", rita.Email, out)
	}

	// Debian's server bounces the copy later: the bounce goes to the
	// copy's return path, fails its queue row and the coordinator is told.
	rp := regexp.MustCompile(`(?m)^Return-Path: <(security\+bounce-[a-z2-7]+@example\.org)>`).FindSubmatch(got[deb.Email][0])
	if rp == nil {
		t.Fatalf("no VERP return path on the copy:\n%s", got[deb.Email][0][:300])
	}
	dsn := filepath.Join(t.TempDir(), "dsn.eml")
	os.WriteFile(dsn, []byte("From: MAILER-DAEMON@mx.debian.example\r\nTo: "+string(rp[1])+"\r\nSubject: Undelivered Mail Returned to Sender\r\n"+
		"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"+
		"--B\r\nContent-Type: text/plain\r\n\r\nThe mail system could not deliver your message.\r\n"+
		"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.debian.example\r\n\r\n"+
		"Final-Recipient: rfc822; security@debian.example\r\nOriginal-Recipient: rfc822;security@debian.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"+
		"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n--B--\r\n"), 0o600)
	if out, err := swaks(t, "--server", s.addr, "--from", "", "--to", string(rp[1]), "--data", "@"+dsn); err != nil {
		t.Fatalf("swaks bounce: %v\n%s", err, out)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		_, out, _ = runCVD(t, dir, nil, "queue", "list", "--config", cfg, "--all")
		if regexp.MustCompile(`security@debian\.example +failed`).MatchString(out) && len(outboxMail(t, dir)[cora.Email]) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !regexp.MustCompile(`security@debian\.example +failed .*5\.1\.1`).MatchString(out) {
		t.Errorf("bounced row not failed:\n%s", out)
	}
	notices := outboxMail(t, dir)[cora.Email]
	if len(notices) != 2 {
		t.Fatalf("coordinator has %d messages, want the post and a notice\n%s", len(notices), outboxListing(t, dir))
	}
	told := false
	for _, n := range notices {
		plain, _, err := cora.Decrypt(n)
		if err == nil && strings.Contains(plain, "could not be sent a post") {
			told = true
			if !strings.Contains(plain, "security@debian.example") || !strings.Contains(plain, "5.1.1") {
				t.Errorf("notice:\n%s", plain)
			}
		}
	}
	if !told {
		t.Errorf("coordinator was not told about the bounce\n%s", outboxListing(t, dir))
	}
	s.stop(t)
}

func gpgFingerprints(t *testing.T, file string) string {
	return gpgShowKey(t, file)
}
