package crypto

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSealOpenRoundTrip(t *testing.T) {
	list, alice, bob := ed(t, "list"), ed(t, "alice"), ed(t, "bob")
	copies, err := SealFanout([]byte(innerEntity), outerHeader("security+2026-001@example.org"), list, []*Key{alice.Public(), bob.Public()}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range []*Key{alice, bob} {
		msg := copies[i]
		if !bytes.Contains(msg, []byte("\r\nSubject: [...]\r\n")) || bytes.Contains(msg, []byte("heap overflow")) {
			t.Fatalf("outer header leaks or lacks the neutral subject:\n%s", msg[:400])
		}
		if bytes.Contains(msg, []byte("Version: ")) && bytes.Contains(msg, []byte("GopenPGP")) {
			t.Fatal("armor has a version header")
		}
		o, err := Open(msg, []*Key{k}, []*Key{list.Public()}, testNow, Limits{})
		if err != nil {
			t.Fatalf("open copy %d: %v", i, err)
		}
		if !o.Encrypted || o.Signature != Good || o.Signer != list.Fingerprint() {
			t.Fatalf("copy %d: encrypted=%v sig=%v signer=%s", i, o.Encrypted, o.Signature, o.Signer)
		}
		if o.Protection != "cipher" || o.Protected.Get("Subject") != "[2026-001] heap overflow in the parser" {
			t.Fatalf("protection %q subject %q", o.Protection, o.Protected.Get("Subject"))
		}
		if o.Protected.Get("From") == "" || o.Protected.Get("Message-Id") == "" {
			t.Fatalf("outer fields not copied inside: %v", o.Protected.Map())
		}
		if !contains(o.HPOuter, "Subject: [...]") || !contains(o.HPOuter, "To: security+2026-001@example.org") {
			t.Fatalf("HP-Outer = %q", o.HPOuter)
		}
		if !bytes.Contains(o.Entity, []byte("Grüße")) {
			t.Fatal("body lost")
		}
	}
	_, err = Open(copies[0], []*Key{bob}, []*Key{list}, testNow, Limits{})
	if !errors.Is(err, ErrDecrypt) {
		t.Fatalf("bob opened alice's copy: %v", err)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
