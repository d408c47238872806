package e2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

func execOut(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

var postN int

// post sends body to the list as u would: encrypted to the list key and
// signed, over SMTP with swaks.
func post(t *testing.T, s *cvdtest.Server, u *gpgtest.User, list, body, tag string) {
	t.Helper()
	postN++
	inner := "Content-Type: text/plain; charset=utf-8\r\n\r\n" + strings.ReplaceAll(body, "\n", "\r\n")
	fpr := projectFingerprint(t, u)
	swaks(t, s.Addr, u.Email, list, pgpmime(
		"From: "+u.Name+" <"+u.Email+">\r\nTo: "+list+"\r\nSubject: ...\r\nMessage-ID: <"+tag+strconv.Itoa(postN)+"@"+strings.Split(u.Email, "@")[1]+">\r\n",
		u.EncryptSign([]byte(inner), fpr)))
}

// projectFingerprint is the fingerprint of the security@ key u imported.
func projectFingerprint(t *testing.T, u *gpgtest.User) string {
	out, _ := u.Run(nil, "--with-colons", "--list-keys", "security@example.org")
	m := regexp.MustCompile(`(?m)^fpr:+([0-9A-F]{40}):`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s has no project key", u.Email)
	}
	return m[1]
}

// readAs decrypts m with u's key, checks it is signed by the project key,
// and returns the plaintext.
func readAs(t *testing.T, u *gpgtest.User, m outMail) string {
	t.Helper()
	plain, status, err := u.Decrypt(m.raw)
	if err != nil || !gpgtest.HasStatus(status, "DECRYPTION_OKAY") {
		t.Fatalf("%s cannot decrypt %s: %v\n%s", u.Email, m.name, err, status)
	}
	if !strings.Contains(status, "VALIDSIG "+projectFingerprint(t, u)) {
		t.Fatalf("%s: %s is not signed by the project key:\n%s", u.Email, m.name, status)
	}
	return plain
}

// readKind decrypts the messages and returns the first whose subject
// contains subject.
func readKind(t *testing.T, u *gpgtest.User, ms []outMail, subject string) string {
	t.Helper()
	for _, m := range ms {
		if p := readAs(t, u, m); strings.Contains(p, subject) {
			return p
		}
	}
	t.Fatalf("%s has no message about %q", u.Email, subject)
	return ""
}

func lastOf(ms []outMail) outMail { return ms[len(ms)-1] }

// waitFor waits for a message to u, after the first skip, whose
// decrypted text contains want, and returns that text.
func waitFor(t *testing.T, o outbox, u *gpgtest.User, skip int, want string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ms := o.to(u.Email)
		for _, m := range ms[min(skip, len(ms)):] {
			if p, _, err := u.Decrypt(m.raw); err == nil && strings.Contains(p, want) {
				return readAs(t, u, m)
			}
		}
		if time.Now().After(deadline) {
			for _, m := range ms[min(skip, len(ms)):] {
				p, status, err := u.Decrypt(m.raw)
				t.Logf("message %s to %s: %v\n%s\n%s", m.name, u.Email, err, status, p)
			}
			t.Fatalf("no message to %s with %q after 60s\noutbox:\n%s", u.Email, want, cvdtest.Listing(cvdtest.Outbox(t, o.dir)))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// binaryKey is u's public key, base64, as Autocrypt carries it.
func binaryKey(t *testing.T, u *gpgtest.User) string {
	out, _ := u.Run(nil, "--export", u.Email)
	return base64.StdEncoding.EncodeToString([]byte(out))
}

// fileTime is when cvd delivered m (the Maildir name's seconds).
func fileTime(t *testing.T, m outMail) time.Time {
	secs, err := strconv.ParseInt(strings.SplitN(m.name, ".", 2)[0], 10, 64)
	if err != nil {
		t.Fatalf("maildir name %s", m.name)
	}
	return time.Unix(secs, 0).UTC()
}

// proposeDate is a Tuesday to Thursday at 10:00 UTC on or after t.
func proposeDate(t time.Time) time.Time {
	d := time.Date(t.Year(), t.Month(), t.Day(), 10, 0, 0, 0, time.UTC)
	if d.Before(t) {
		d = d.AddDate(0, 0, 1)
	}
	for d.Weekday() == time.Friday || d.Weekday() == time.Saturday || d.Weekday() == time.Sunday || d.Weekday() == time.Monday {
		d = d.AddDate(0, 0, 1)
	}
	return d
}

// verifySigned checks a PGP/MIME multipart/signed message with gpg
// --verify over the exact bytes of its first part, and returns that part.
func verifySigned(t *testing.T, u *gpgtest.User, raw []byte) string {
	t.Helper()
	if !bytes.Contains(raw, []byte("\r\n")) {
		// Maildirs written by mail clients use LF; the signature is
		// over the canonical CRLF form.
		raw = bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
	}
	signed, status, err := u.VerifyMultipartSigned(raw)
	if err != nil || !gpgtest.HasStatus(status, "GOODSIG") || !strings.Contains(status, "VALIDSIG "+projectFingerprint(t, u)) {
		t.Fatalf("gpg --verify: %v\n%s", err, status)
	}
	return string(signed)
}

// mbsync syncs an IMAP account into maildir over STARTTLS, trusting cvd's
// certificate, as a member would set it up.
func mbsync(t *testing.T, addr, user, password, cert, maildir string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("mbsync"); err != nil {
		t.Fatal("mbsync is not installed (the test script installs it: apt-get install -y isync)")
	}
	host, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	os.MkdirAll(maildir, 0o700)
	rc := fmt.Sprintf("IMAPAccount m\nHost %s\nPort %s\nUser %s\nPass %s\nSSLType STARTTLS\nCertificateFile %s\nAuthMechs LOGIN\n\n"+
		"IMAPStore m-remote\nAccount m\n\nMaildirStore m-local\nPath %s/\nInbox %s/INBOX\nSubFolders Verbatim\n\n"+
		"Channel m\nFar :m-remote:\nNear :m-local:\nPatterns *\nCreate Near\nSync Pull\nExpunge None\nSyncState *\n",
		host, port, user, password, cert, maildir, maildir)
	conf := filepath.Join(dir, "mbsyncrc")
	os.WriteFile(conf, []byte(rc), 0o600)
	cmd := exec.Command("mbsync", "-c", conf, "-a")
	cmd.Env = append(os.Environ(), "HOME="+dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// maildir returns the messages of a Maildir folder.
func maildir(t *testing.T, folder string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, sub := range []string{"cur", "new"} {
		files, _ := filepath.Glob(filepath.Join(folder, sub, "*"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }

// pgpmime is gpgtest.PGPMIME as bytes, for swaks.
func pgpmime(header string, armored []byte) []byte {
	return []byte(gpgtest.PGPMIME(header, armored))
}
