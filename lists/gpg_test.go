package lists_test

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// gpgUser is a person with their own GnuPG home and key.
type gpgUser struct {
	t     *testing.T
	home  string
	name  string
	email string
	fpr   string
	pub   []byte
}

// newGPGUser makes a GnuPG home with an Ed25519/Curve25519 key for
// "name <email>" that expires after expire ("never", "1d", ...).
func newGPGUser(t *testing.T, name, email, expire string) *gpgUser {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Fatal("gpg is not installed (the test script installs it: apt-get install -y gnupg)")
	}
	home, err := os.MkdirTemp("/tmp", "g")
	if err != nil {
		t.Fatal(err)
	}
	u := &gpgUser{t: t, home: home, name: name, email: email}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
		os.RemoveAll(home)
	})
	u.run(nil, "--passphrase", "", "--quick-gen-key", name+" <"+email+">", "future-default", "default", expire)
	out, _ := u.run(nil, "--with-colons", "--list-keys", email)
	m := regexp.MustCompile(`(?m)^fpr:+([0-9A-F]{40}):`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no fingerprint for %s:\n%s", email, out)
	}
	u.fpr = m[1]
	pub, _ := u.run(nil, "--armor", "--export", email)
	u.pub = []byte(pub)
	return u
}

// run runs gpg in the user's home and returns stdout and the status lines.
func (u *gpgUser) run(stdin []byte, args ...string) (string, string) {
	u.t.Helper()
	out, status, err := u.try(stdin, args...)
	if err != nil {
		u.t.Fatalf("gpg %v: %v\n%s", args, err, status)
	}
	return out, status
}

func (u *gpgUser) try(stdin []byte, args ...string) (string, string, error) {
	full := append([]string{"--homedir", u.home, "--batch", "--yes", "--pinentry-mode", "loopback", "--trust-model", "always", "--status-fd", "2"}, args...)
	cmd := exec.Command("gpg", full...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func (u *gpgUser) importKey(armored []byte) {
	u.t.Helper()
	u.run(armored, "--import")
}

// encryptSign encrypts text to the given fingerprints and signs it, armored.
func (u *gpgUser) encryptSign(text []byte, to ...string) []byte {
	u.t.Helper()
	args := []string{"--armor", "--encrypt", "--sign", "--local-user", u.fpr}
	for _, r := range to {
		args = append(args, "--recipient", r)
	}
	out, _ := u.run(text, args...)
	return []byte(out)
}

// decrypt decrypts the PGP message inside raw and returns the plaintext
// and gpg's status lines.
func (u *gpgUser) decrypt(raw []byte) (string, string, error) {
	u.t.Helper()
	i := bytes.Index(raw, []byte("-----BEGIN PGP MESSAGE-----"))
	j := bytes.Index(raw, []byte("-----END PGP MESSAGE-----"))
	if i < 0 || j < i {
		u.t.Fatalf("no PGP message in %q", raw[:min(len(raw), 400)])
	}
	return u.try(raw[i:j+len("-----END PGP MESSAGE-----")], "--decrypt")
}

func hasStatus(status, word string) bool {
	return strings.Contains(status, "[GNUPG:] "+word)
}
