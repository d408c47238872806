// Package gpgtest runs GnuPG for tests: people with their own GnuPG home
// and key, who encrypt, sign, decrypt and verify as a user of cvd would.
package gpgtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// User is a person with their own GnuPG home and key.
type User struct {
	t     testing.TB
	Home  string
	Name  string
	Email string
	// Fpr is the primary key's fingerprint.
	Fpr string
	// Pub is the armored public key.
	Pub []byte
}

// New makes a GnuPG home with an Ed25519/Curve25519 key for "name <email>"
// that expires after expire ("never", "1d", ...). The home is removed and
// its agent stopped when the test ends.
func New(t testing.TB, name, email, expire string) *User {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Fatal("gpg is not installed (the test script installs it: apt-get install -y gnupg)")
	}
	home, err := os.MkdirTemp("/tmp", "g")
	if err != nil {
		t.Fatal(err)
	}
	u := &User{t: t, Home: home, Name: name, Email: email}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
		os.RemoveAll(home)
	})
	u.Run(nil, "--passphrase", "", "--quick-gen-key", name+" <"+email+">", "future-default", "default", expire)
	out, _ := u.Run(nil, "--with-colons", "--list-keys", email)
	m := regexp.MustCompile(`(?m)^fpr:+([0-9A-F]{40}):`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no fingerprint for %s:\n%s", email, out)
	}
	u.Fpr = m[1]
	pub, _ := u.Run(nil, "--armor", "--export", email)
	u.Pub = []byte(pub)
	return u
}

// Run runs gpg in the user's home and returns stdout and the status lines.
func (u *User) Run(stdin []byte, args ...string) (string, string) {
	u.t.Helper()
	out, status, err := u.Try(stdin, args...)
	if err != nil {
		u.t.Fatalf("gpg %v: %v\n%s", args, err, status)
	}
	return out, status
}

// Try is Run returning gpg's error instead of failing the test.
func (u *User) Try(stdin []byte, args ...string) (string, string, error) {
	full := append([]string{"--homedir", u.Home, "--batch", "--yes", "--pinentry-mode", "loopback", "--trust-model", "always", "--status-fd", "2"}, args...)
	cmd := exec.Command("gpg", full...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// Import imports an armored key.
func (u *User) Import(armored []byte) {
	u.t.Helper()
	u.Run(armored, "--import")
}

// EncryptSign encrypts text to the given fingerprints and signs it, armored.
func (u *User) EncryptSign(text []byte, to ...string) []byte {
	u.t.Helper()
	args := []string{"--armor", "--encrypt", "--sign", "--local-user", u.Fpr}
	for _, r := range to {
		args = append(args, "--recipient", r)
	}
	out, _ := u.Run(text, args...)
	return []byte(out)
}

// Decrypt decrypts the PGP message inside raw and returns the plaintext
// and gpg's status lines.
func (u *User) Decrypt(raw []byte) (string, string, error) {
	u.t.Helper()
	i := bytes.Index(raw, []byte("-----BEGIN PGP MESSAGE-----"))
	j := bytes.Index(raw, []byte("-----END PGP MESSAGE-----"))
	if i < 0 || j < i {
		u.t.Fatalf("no PGP message in %q", raw[:min(len(raw), 400)])
	}
	return u.Try(raw[i:j+len("-----END PGP MESSAGE-----")], "--decrypt")
}

// HasStatus reports whether gpg printed the status keyword word.
func HasStatus(status, word string) bool {
	return strings.Contains(status, "[GNUPG:] "+word)
}

// PGPMIME wraps an armored PGP message and the header lines (each ending
// in CRLF) into an RFC 3156 multipart/encrypted message, as mail clients
// send it.
func PGPMIME(header string, armored []byte) string {
	return header + "MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"XX\"\r\n\r\n" +
		"--XX\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n" +
		"--XX\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\r\n" +
		strings.ReplaceAll(string(armored), "\n", "\r\n") + "\r\n--XX--\r\n"
}

// VerifyMultipartSigned runs gpg --verify, as u, over the exact bytes of
// the first part of the PGP/MIME multipart/signed message raw (CRLF), and
// returns that part and gpg's status output.
func (u *User) VerifyMultipartSigned(raw []byte) (signed []byte, status string, err error) {
	u.t.Helper()
	head, body, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	m := regexp.MustCompile(`(?i)boundary="?([^";\r\n]+)"?`).FindSubmatch(head)
	if m == nil || !bytes.Contains(bytes.ToLower(head), []byte("multipart/signed")) {
		u.t.Fatalf("not multipart/signed:\n%s", head)
	}
	parts := bytes.Split(body, []byte("--"+string(m[1])))
	if len(parts) < 4 {
		u.t.Fatalf("multipart/signed with %d parts", len(parts)-2)
	}
	signed = bytes.TrimSuffix(bytes.TrimPrefix(parts[1], []byte("\r\n")), []byte("\r\n"))
	i := bytes.Index(parts[2], []byte("-----BEGIN PGP SIGNATURE"))
	if i < 0 {
		u.t.Fatalf("no signature part")
	}
	dir := u.t.TempDir()
	os.WriteFile(filepath.Join(dir, "part"), signed, 0o600)
	os.WriteFile(filepath.Join(dir, "part.asc"), parts[2][i:], 0o600)
	_, status, err = u.Try(nil, "--verify", filepath.Join(dir, "part.asc"), filepath.Join(dir, "part"))
	return signed, status, err
}
