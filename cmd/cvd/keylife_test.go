package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
	"github.com/cvd-project/cvd/publish"
)

// readSealed decrypts a sealed notice as u; the server's clock may run
// ahead of gpg's (CVD_CLOCK_OFFSET), so signature times are not held
// against it.
func readSealed(t *testing.T, u *gpgtest.User, raw []byte) string {
	t.Helper()
	i := strings.Index(string(raw), "-----BEGIN PGP MESSAGE-----")
	j := strings.Index(string(raw), "-----END PGP MESSAGE-----")
	if i < 0 || j < i {
		t.Fatalf("%s: not a sealed message:\n%s", u.Email, raw)
	}
	plain, status, err := u.Try(raw[i:j+len("-----END PGP MESSAGE-----")], "--ignore-time-conflict", "--decrypt")
	if err != nil || !gpgtest.HasStatus(status, "DECRYPTION_OKAY") {
		t.Fatalf("%s cannot decrypt: %v\n%s", u.Email, err, status)
	}
	return plain
}

// mailTo returns the messages delivered to rcpt so far, oldest first.
func mailTo(t *testing.T, dir, rcpt string) []cvdtest.Mail {
	var out []cvdtest.Mail
	for _, m := range cvdtest.Outbox(t, filepath.Join(dir, "outbox")) {
		if m.DeliveredTo == rcpt {
			out = append(out, m)
		}
	}
	return out
}

// TestKeyExpiryWarnings: a downstream whose key expires within 30 days
// is told at the server's start, sealed to that key, and so is the team;
// ten days later (the server's clock moved on) a member whose key has
// come within 30 days is told, and the downstream is not told again.
func TestKeyExpiryWarnings(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	deb := gpgtest.New(t, "Debian Security", "team@security.debian.example", "20d")
	fred := gpgtest.New(t, "Fred Fixer", "fred@example.net", "35d")
	addTeam(t, dir, cfg, cora)
	project, _ := os.ReadFile(filepath.Join(dir, "keys", "project.pub.asc"))
	deb.Import(project)
	fred.Import(project)
	os.WriteFile(filepath.Join(dir, "keys", "debian.asc"), deb.Pub, 0o600)
	cvdtest.AppendConfig(t, cfg, "[[embargo.roster]]\nname = \"Debian\"\nemail = \""+deb.Email+"\"\nkey_file = \"keys/debian.asc\"\n")
	fredKey := filepath.Join(t.TempDir(), "fred.asc")
	os.WriteFile(fredKey, fred.Pub, 0o600)
	runCVD(t, dir, nil, "list", "create", "dev", "--config", cfg)
	if code, out, errOut := runCVD(t, dir, nil, "member", "add", "dev", fred.Email, "--role", "fixer", "--key", fredKey, "--config", cfg); code != 0 {
		t.Fatalf("member add: %s%s", out, errOut)
	}

	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	diag := func() string { return s.logs() + outboxListing(t, dir) }
	warned := readSealed(t, deb, waitOutboxTo(t, dir, deb.Email, diag).Raw)
	debExp := time.Now().UTC().Add(20 * 24 * time.Hour).Format("2006-01-02")
	if !strings.Contains(warned, "Your OpenPGP key expires on") || !strings.Contains(warned, deb.Fpr) || !strings.Contains(warned, debExp) {
		t.Errorf("Debian's warning:\n%s", warned)
	}
	waitFor(t, "the team's notice about Debian's key", func() bool { return len(mailTo(t, dir, cora.Email)) >= 1 }, diag)
	team := readSealed(t, cora, mailTo(t, dir, cora.Email)[0].Raw)
	if !strings.Contains(team, "the key of "+deb.Email+" expires on") || !strings.Contains(team, debExp) || !strings.Contains(team, deb.Fpr) || !strings.Contains(team, "has been told") {
		t.Errorf("Cora's notice:\n%s", team)
	}
	if n := len(mailTo(t, dir, fred.Email)); n != 0 {
		t.Errorf("Fred, whose key has 35 days left, got %d messages", n)
	}
	s.stop(t)

	s = startCVD(t, t.TempDir(), []string{"CVD_CLOCK_OFFSET=240h"}, "--config", cfg)
	warned = readSealed(t, fred, waitOutboxTo(t, dir, fred.Email, diag).Raw)
	if !strings.Contains(warned, fred.Fpr) || !strings.Contains(warned, time.Now().UTC().Add(35*24*time.Hour).Format("2006-01-02")) {
		t.Errorf("Fred's warning:\n%s", warned)
	}
	waitFor(t, "the team's notice about Fred's key", func() bool { return len(mailTo(t, dir, cora.Email)) >= 2 }, diag)
	if got := readSealed(t, cora, mailTo(t, dir, cora.Email)[1].Raw); !strings.Contains(got, "the key of "+fred.Email) {
		t.Errorf("Cora's second notice:\n%s", got)
	}
	s.stop(t)
	if n := len(mailTo(t, dir, deb.Email)); n != 1 {
		t.Errorf("Debian got %d messages, want the one warning", n)
	}
	if n := len(mailTo(t, dir, cora.Email)); n != 2 {
		t.Errorf("Cora got %d messages, want one notice per key", n)
	}
}

// TestKeyRotation is an administrator replacing the project key, then
// revoking the old one: members get the new key signed by the old one
// and certified by it; after the restart the site publishes the new key
// and signs security.txt with it; a report encrypted to the old key is
// still read; the revocation, with its reason and the operator, is
// recorded and published in the Web Key Directory.
func TestKeyRotation(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	fred := gpgtest.New(t, "Fred Fixer", "fred@example.net", "never")
	rita := gpgtest.New(t, "Rita Reporter", "rita@reporter.example", "never")
	addTeam(t, dir, cfg, cora)
	oldPub, _ := os.ReadFile(filepath.Join(dir, "keys", "project.pub.asc"))
	oldFpr := regexp.MustCompile(`(?m)^fpr:+([0-9A-F]{40}):`).FindStringSubmatch(gpgShowKey(t, filepath.Join(dir, "keys", "project.pub.asc")))[1]
	for _, u := range []*gpgtest.User{fred, rita} {
		u.Import(oldPub)
	}
	fredKey := filepath.Join(t.TempDir(), "fred.asc")
	os.WriteFile(fredKey, fred.Pub, 0o600)
	runCVD(t, dir, nil, "list", "create", "dev", "--config", cfg)
	runCVD(t, dir, nil, "member", "add", "dev", fred.Email, "--role", "fixer", "--key", fredKey, "--config", cfg)
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	diag := func() string { return s.logs() + outboxListing(t, dir) }
	cli := func(want int, args ...string) string {
		t.Helper()
		code, out, errOut := runCVD(t, dir, nil, append(args, "--config", cfg)...)
		if code != want {
			t.Fatalf("cvd %v: exit %d, want %d\n%s%s", args, code, want, out, errOut)
		}
		return out + errOut
	}

	out := cli(0, "--as", "alice", "key", "rotate")
	m := regexp.MustCompile(`new project key ([0-9A-F]{40}), certified by ` + oldFpr).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "for 2 addresses") {
		t.Fatalf("rotate:\n%s", out)
	}
	newFpr := m[1]
	// Each member reads the announcement as a person would: signed by
	// the key they know, the new key attached and certified by it.
	for _, u := range []*gpgtest.User{cora, fred} {
		msg := waitOutboxTo(t, dir, u.Email, diag)
		signed, status, err := u.VerifyMultipartSigned(msg.Raw)
		if err != nil || !strings.Contains(status, "VALIDSIG "+oldFpr) || !strings.Contains(string(signed), newFpr) {
			t.Fatalf("%s: the rotation notice is not signed by the old key: %v\n%s\n%s", u.Email, err, status, signed)
		}
		att := regexp.MustCompile(`(?s)filename="[^"]+\.asc"\r\nContent-Transfer-Encoding: base64\r\n\r\n(.*?)\r\n--`).FindSubmatch(signed)
		if att == nil {
			t.Fatalf("%s: no key attached:\n%s", u.Email, signed)
		}
		key, _ := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(att[1]), "\r\n", ""))
		u.Import(key)
		sigs, _ := u.Run(nil, "--with-colons", "--check-sigs", newFpr)
		if !regexp.MustCompile(`(?m)^sig:!:.*:` + oldFpr[24:] + `:`).MatchString(sigs) {
			t.Errorf("%s: the new key is not certified by the old one:\n%s", u.Email, sigs)
		}
	}
	s.stop(t)

	s = startCVD(t, t.TempDir(), nil, "--config", cfg)
	base := "http://" + s.webAddr(t)
	code, wkd := httpGet(t, base, publish.WKDPath("security@example.org"))
	wkdFile := filepath.Join(t.TempDir(), "wkd.key")
	os.WriteFile(wkdFile, []byte(wkd), 0o600)
	if shown := gpgShowKey(t, wkdFile); code != 200 || !strings.Contains(shown, newFpr) || strings.Contains(shown, oldFpr) {
		t.Errorf("WKD after the rotation: %d\n%s", code, shown)
	}
	_, txt := httpGet(t, base, "/.well-known/security.txt")
	if _, status, err := fred.Try([]byte(txt), "--decrypt"); err != nil || !strings.Contains(status, "VALIDSIG "+newFpr) {
		t.Errorf("security.txt is not signed by the new key: %v\n%s", err, status)
	}
	// Rita still has the old key: her report is read all the same.
	ritaKey, _ := rita.Run(nil, "--export", rita.Email)
	report := "Content-Type: text/plain\r\n\r\nOverflow in parse_header. TOKEN-OLDKEY-4711\r\n"
	if err := smtpSend(s.addr, rita.Email, gpgtest.PGPMIME(
		"From: Rita <rita@reporter.example>\r\nTo: security@example.org\r\nSubject: ...\r\nMessage-ID: <old-key@reporter.example>\r\n"+
			"Autocrypt: addr=rita@reporter.example; prefer-encrypt=mutual; keydata="+base64.StdEncoding.EncodeToString([]byte(ritaKey))+"\r\n",
		rita.EncryptSign([]byte(report), oldFpr))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Cora's copy of the report", func() bool {
		for _, m := range mailTo(t, dir, cora.Email) {
			if !strings.Contains(string(m.Raw), "BEGIN PGP MESSAGE") {
				continue
			}
			if p, _, err := cora.Decrypt(m.Raw); err == nil && strings.Contains(p, "TOKEN-OLDKEY-4711") {
				return true
			}
		}
		return false
	}, func() string {
		var b strings.Builder
		for _, m := range mailTo(t, dir, cora.Email) {
			if strings.Contains(string(m.Raw), "BEGIN PGP MESSAGE") {
				p, st, err := cora.Decrypt(m.Raw)
				fmt.Fprintf(&b, "%v\n%s\n%s\n", err, st, p)
			}
		}
		return b.String() + diag()
	})

	if out := cli(1, "key", "revoke", newFpr, "--reason", "no"); !strings.Contains(out, "current project key") {
		t.Errorf("revoking the current key: %s", out)
	}
	cli(2, "key", "revoke", oldFpr)
	cli(0, "--as", "bob", "key", "revoke", oldFpr, "--reason", "laptop stolen", "--compromised")
	list := cli(0, "key", "list")
	for _, want := range []string{"current  " + newFpr, "revoked  " + oldFpr, "rotated  cli:alice: " + oldFpr + " -> " + newFpr,
		"revoked  cli:bob: " + oldFpr + ": laptop stolen"} {
		if !strings.Contains(list, want) {
			t.Errorf("key list lacks %q:\n%s", want, list)
		}
	}
	s.stop(t)
	s = startCVD(t, t.TempDir(), nil, "--config", cfg)
	_, wkd = httpGet(t, "http://"+s.webAddr(t), publish.WKDPath("security@example.org"))
	os.WriteFile(wkdFile, []byte(wkd), 0o600)
	shown := gpgShowKey(t, wkdFile)
	if !regexp.MustCompile(`(?m)^pub:r:.*\n(?:.*\n)*?fpr:+`+oldFpr).MatchString(shown) || !strings.Contains(shown, newFpr) {
		t.Errorf("WKD after the revocation does not carry the old key revoked and the new one:\n%s", shown)
	}
}
