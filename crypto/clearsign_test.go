package crypto

import (
	"bytes"
	"testing"
)

func TestClearSignVerifiesInGPG(t *testing.T) {
	project := ed(t, "project")
	g := newGPG(t)
	g.importKey(mustArmorPublic(t, project))
	text := []byte("Contact: mailto:security@example.org\nExpires: 2027-05-20T00:00:00.000Z\n- a line starting with a dash\n")
	signed, err := ClearSign(text, project, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(signed, []byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n")) {
		t.Fatalf("not a cleartext-signed message:\n%s", signed)
	}
	out, status := g.mustRun(signed, "--decrypt")
	if !hasStatus(status, "GOODSIG") || !hasStatus(status, "VALIDSIG "+project.Fingerprint()) {
		t.Fatalf("gpg status:\n%s", status)
	}
	if !bytes.Equal(bytes.TrimRight(out, "\n"), bytes.TrimRight(text, "\n")) {
		t.Errorf("gpg recovered %q, want %q", out, text)
	}
	// A changed line breaks the signature.
	tampered := bytes.Replace(signed, []byte("security@example.org"), []byte("attacker@example.net"), 1)
	if _, status, err := g.run(tampered, "--decrypt"); err == nil || hasStatus(status, "GOODSIG") {
		t.Errorf("tampered text verified:\n%s", status)
	}
	if _, err := ClearSign(text, project.Public(), testNow); err == nil {
		t.Error("signed without a secret key")
	}
}
