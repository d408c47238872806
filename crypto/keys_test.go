package crypto

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

func wantProblem(t *testing.T, err error, p KeyProblem) {
	t.Helper()
	var ke *KeyError
	if !errors.As(err, &ke) || ke.Problem != p {
		t.Fatalf("want %v, got %v", p, err)
	}
	if !strings.Contains(err.Error(), p.String()) {
		t.Fatalf("message %q does not say %q", err, p)
	}
}

func TestParseAndInfo(t *testing.T) {
	alice := ed(t, "alice")
	priv, err := ParseKey(mustArmorPrivate(t, alice))
	if err != nil {
		t.Fatal(err)
	}
	if !priv.HasPrivate() || priv.Public().HasPrivate() {
		t.Fatal("private/public mix-up")
	}
	pubArmor := mustArmorPublic(t, priv)
	if bytes.Contains(pubArmor, []byte("Version:")) || bytes.Contains(pubArmor, []byte("PRIVATE")) {
		t.Fatalf("public armor:\n%s", pubArmor)
	}
	pub, err := ParseKey(pubArmor)
	if err != nil {
		t.Fatal(err)
	}
	info, err := pub.Info(testNow)
	if err != nil {
		t.Fatal(err)
	}
	if info.Fingerprint != alice.Fingerprint() || len(info.Fingerprint) != 40 || info.Revoked || !info.Expires.IsZero() {
		t.Fatalf("%+v", info)
	}
	if len(info.Emails) != 1 || info.Emails[0] != "alice@example.org" || info.UserIDs[0] != "Alice <alice@example.org>" {
		t.Fatalf("ids %q emails %q", info.UserIDs, info.Emails)
	}
	if !info.Created.Equal(testNow.Add(-time.Hour)) {
		t.Fatalf("created %v", info.Created)
	}
	if !pub.CanEncrypt(testNow) || !pub.CanSign(testNow) || pub.Algorithm() != "ed25519" {
		t.Fatal("capabilities")
	}
	if err := CheckUsable(pub, testNow); err != nil {
		t.Fatal(err)
	}
	two, err := ParseKeys(append(mustArmorPublic(t, ed(t, "bob")), pubArmor...))
	if err != nil || len(two) != 2 {
		t.Fatalf("two armored blocks: %d keys, %v", len(two), err)
	}
	if _, err := ParseKey([]byte("not a key")); err == nil {
		t.Fatal("garbage parsed")
	}
}

func TestCheckUsable(t *testing.T) {
	t.Run("expired", func(t *testing.T) {
		k, err := generate("Old", "old@example.org", KindCurve25519, testNow.Add(-48*time.Hour), 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, CheckUsable(k.Public(), testNow), KeyExpired)
		if err := CheckUsable(k, testNow.Add(-30*time.Hour)); err != nil {
			t.Fatalf("valid before expiry: %v", err)
		}
		if k.Expires().IsZero() || k.CanEncrypt(testNow) {
			t.Fatal("expiry not reported")
		}
	})
	t.Run("revoked", func(t *testing.T) {
		k, err := generate("Gone", "gone@example.org", KindCurve25519, testNow.Add(-time.Hour), 0)
		if err != nil {
			t.Fatal(err)
		}
		revoke(t, k, testNow.Add(-time.Minute))
		pub, err := ParseKey(mustArmorPublic(t, k))
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, CheckUsable(pub, testNow), KeyRevoked)
		if !pub.Revoked(testNow) {
			t.Fatal("Revoked false")
		}
	})
	t.Run("rsa1024", func(t *testing.T) {
		cfg := &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 1024, Time: func() time.Time { return testNow.Add(-time.Hour) }}
		e, err := openpgp.NewEntity("Weak", "", "weak@example.org", cfg)
		if err != nil {
			t.Fatal(err)
		}
		k := &Key{e: e}
		wantProblem(t, CheckUsable(k, testNow), KeyWeak)
		if k.Algorithm() != "rsa1024" {
			t.Fatal(k.Algorithm())
		}
	})
	t.Run("sign-only", func(t *testing.T) {
		k, err := generate("Signer", "signer@example.org", KindCurve25519, testNow.Add(-time.Hour), 0)
		if err != nil {
			t.Fatal(err)
		}
		k.e.Subkeys = nil
		pub, err := ParseKey(mustArmorPublic(t, k))
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, CheckUsable(pub, testNow), KeyNoEncryption)
		if pub.CanEncrypt(testNow) || !pub.CanSign(testNow) {
			t.Fatal("capabilities")
		}
	})
	t.Run("nil", func(t *testing.T) {
		wantProblem(t, CheckUsable(nil, testNow), KeyInvalid)
	})
	t.Run("not yet valid", func(t *testing.T) {
		k, err := generate("Future", "future@example.org", KindCurve25519, testNow.Add(time.Hour), 0)
		if err != nil {
			t.Fatal(err)
		}
		err = CheckUsable(k.Public(), testNow)
		wantProblem(t, err, KeyInvalid)
		if !strings.Contains(err.Error(), "created in the future") {
			t.Errorf("error %q", err)
		}
	})
}

// TestCheckUsableGPGKeys checks keys made by GnuPG: RSA-1024 and a
// sign-only Ed25519 key.
func TestCheckUsableGPGKeys(t *testing.T) {
	g := newGPG(t)
	g.mustRun(nil, "--quick-gen-key", "Weak <weak@example.org>", "rsa1024", "default", "0")
	g.mustRun(nil, "--quick-gen-key", "Signer <signer@example.org>", "ed25519", "sign", "0")
	for _, c := range []struct {
		addr string
		want KeyProblem
	}{{"weak@example.org", KeyWeak}, {"signer@example.org", KeyNoEncryption}} {
		armored, _ := g.mustRun(nil, "--armor", "--export", c.addr)
		k, err := ParseKey(armored)
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, CheckUsable(k, time.Now()), c.want)
	}
}

func TestGenerateKey(t *testing.T) {
	priv, pub, err := GenerateKey("Project Security", "security@example.org", "")
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !k.HasPrivate() || p.HasPrivate() || k.Fingerprint() != p.Fingerprint() {
		t.Fatal("pair mismatch")
	}
	if err := CheckUsable(p, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := GenerateKey("x", "x@example.org", "dsa"); err == nil {
		t.Fatal("unknown kind accepted")
	}
	if testing.Short() {
		t.Skip("RSA-4096 generation skipped in -short")
	}
	priv, _, err = GenerateKey("Project Security", "security@example.org", KindRSA4096)
	if err != nil {
		t.Fatal(err)
	}
	k, err = ParseKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if k.Algorithm() != "rsa4096" || CheckUsable(k, time.Now()) != nil {
		t.Fatalf("%s %v", k.Algorithm(), CheckUsable(k, time.Now()))
	}
}

func TestDiscover(t *testing.T) {
	alice, bob, carol := ed(t, "alice"), ed(t, "bob"), ed(t, "carol")
	var bin bytes.Buffer
	if err := alice.e.Serialize(&bin); err != nil {
		t.Fatal(err)
	}
	keydata := base64.StdEncoding.EncodeToString(bin.Bytes())
	var folded strings.Builder
	for len(keydata) > 70 {
		folded.WriteString(keydata[:70] + "\r\n ")
		keydata = keydata[70:]
	}
	folded.WriteString(keydata)
	bobArmor := mustArmorPublic(t, bob)
	carolArmor := strings.ReplaceAll(string(mustArmorPublic(t, carol)), "\n", "\r\n")
	raw := "From: alice@example.org\r\n" +
		"Autocrypt: addr=Alice@example.org; prefer-encrypt=mutual; keydata=\r\n " + folded.String() + "\r\n" +
		"Subject: keys\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=K\r\n\r\n" +
		"--K\r\nContent-Type: text/plain\r\n\r\nMy colleague's key:\r\n" + carolArmor + "\r\nthanks\r\n" +
		"--K\r\nContent-Type: application/pgp-keys; name=\"bob.asc\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(bobArmor) + "\r\n" +
		"--K--\r\n"
	found, err := Discover([]byte(raw), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{alice.Fingerprint(): "autocrypt", bob.Fingerprint(): "attachment", carol.Fingerprint(): "inline"}
	if len(found) != 3 {
		t.Fatalf("found %d keys", len(found))
	}
	for _, f := range found {
		if want[f.Key.Fingerprint()] != f.Source || f.Key.HasPrivate() {
			t.Fatalf("%s from %s", f.Key.Fingerprint(), f.Source)
		}
		if f.Source == "autocrypt" && f.Addr != "alice@example.org" {
			t.Fatalf("addr %q", f.Addr)
		}
	}
	none, err := Discover([]byte("Subject: nothing\r\n\r\nno keys here\r\n"), Limits{})
	if err != nil || len(none) != 0 {
		t.Fatalf("%v %v", none, err)
	}
}
