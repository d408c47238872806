package crypto

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
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

func TestSealRefuses(t *testing.T) {
	list, alice := ed(t, "list"), ed(t, "alice")
	old, err := generate("Old", "old@example.org", KindCurve25519, testNow.Add(-48*time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, err = SealFanout([]byte(innerEntity), outerHeader("l@example.org"), list, []*Key{alice, old.Public()}, testNow)
	wantProblem(t, err, KeyExpired)
	if _, err := Seal([]byte(innerEntity), outerHeader("l@example.org"), list.Public(), alice, testNow); err == nil {
		t.Fatal("sealed with a public key as signer")
	}
	if _, err := SealFanout([]byte(innerEntity), outerHeader("l@example.org"), list, nil, testNow); err == nil {
		t.Fatal("sealed to nobody")
	}
}

func TestReseal(t *testing.T) {
	list, alice, bob := ed(t, "list"), ed(t, "alice"), ed(t, "bob")
	first, err := Seal([]byte(innerEntity), outerHeader("security@example.org"), alice, list, testNow)
	if err != nil {
		t.Fatal(err)
	}
	o, err := Open(first, []*Key{list}, []*Key{alice}, testNow, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var to []string
	for i := 0; i < 12; i++ {
		to = append(to, "member-with-a-long-address-"+string(rune('a'+i))+"@example.org")
	}
	outer := outerHeader(strings.Join(to, ", "))
	second, err := Seal(o.Entity, outer, list, bob, testNow)
	if err != nil {
		t.Fatal(err)
	}
	o2, err := Open(second, []*Key{bob}, []*Key{list}, testNow, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if o2.Signature != Good || len(o2.HPOuter) != 5 || !contains(o2.HPOuter, "To: "+strings.Join(to, ", ")) {
		t.Fatalf("sig=%v HP-Outer=%q", o2.Signature, o2.HPOuter)
	}
	if o2.Protected.Get("Subject") != "[2026-001] heap overflow in the parser" {
		t.Fatalf("subject %q", o2.Protected.Get("Subject"))
	}
	for _, line := range bytes.Split(second, []byte("\r\n")) {
		if len(line) > 998 {
			t.Fatalf("line of %d bytes", len(line))
		}
	}
}
