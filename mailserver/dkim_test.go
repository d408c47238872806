package mailserver

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/cvd-project/cvd/internal/dkimtest"
	"github.com/cvd-project/cvd/internal/dnstest"
)

func testDKIMSigner(t testing.TB) (*DKIMSigner, []string) {
	t.Helper()
	var keys []DKIMKey
	var records []string
	for _, kind := range []string{"rsa", "ed25519"} {
		pem, err := GenerateDKIMKey(kind)
		if err != nil {
			t.Fatal(err)
		}
		k, err := ParseDKIMKey(pem)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := DKIMRecord(k)
		if err != nil {
			t.Fatal(err)
		}
		sel := "cvd-" + kind
		keys = append(keys, DKIMKey{Selector: sel, Signer: k})
		records = append(records, sel+"._domainkey.example.org. 300 IN TXT "+SplitTXT(rec))
	}
	s, err := NewDKIMSigner("example.org", keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, records
}

const dkimSample = "From: example.org security team <security@example.org>\r\n" +
	"To: announce@example.org\r\n" +
	"Subject: [SECURITY] advisory\r\n" +
	"Date: Sun, 29 Nov 2026 10:00:00 +0000\r\n" +
	"Message-Id: <1@example.org>\r\n" +
	"List-Unsubscribe: <https://example.org/u/abc>\r\n" +
	"\r\n" +
	"Body line one.\r\n" +
	"From here on, trailing space \r\n"

// Both signatures (RSA and Ed25519) pass an independent verifier reading
// the keys from DNS, and a changed Subject or body fails both.
func TestDKIMSignVerifiesIndependently(t *testing.T) {
	dkimtest.Available(t)
	s, records := testDKIMSigner(t)
	dns := dnstest.Start(t, records...)

	signed, err := s.Sign([]byte(dkimSample))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(signed, []byte("DKIM-Signature:")); n != 2 {
		t.Fatalf("%d DKIM-Signature fields, want 2:\n%s", n, signed)
	}
	report, ok := dkimtest.Verify(t, dns.Addr, signed)
	if !ok || !strings.Contains(report, "a=rsa-sha256 pass") || !strings.Contains(report, "a=ed25519-sha256 pass") {
		t.Fatalf("verifier did not pass both signatures:\n%s", report)
	}
	if !strings.Contains(report, "d=example.org") {
		t.Fatalf("signature not aligned with the From domain:\n%s", report)
	}

	for name, tamper := range map[string]func([]byte) []byte{
		"subject": func(b []byte) []byte { return bytes.Replace(b, []byte("advisory"), []byte("adv1sory"), 1) },
		"body":    func(b []byte) []byte { return bytes.Replace(b, []byte("line one"), []byte("line 0ne"), 1) },
		"added list header": func(b []byte) []byte {
			return bytes.Replace(b, []byte("\r\n\r\n"), []byte("\r\nList-Unsubscribe: <mailto:evil@example.net>\r\n\r\n"), 1)
		},
	} {
		report, ok := dkimtest.Verify(t, dns.Addr, tamper(bytes.Clone(signed)))
		if ok || strings.Contains(report, "pass") {
			t.Errorf("%s changed, verifier still passes:\n%s", name, report)
		}
	}

	// A key missing from DNS fails.
	dns.Set(t, records[0])
	if report, ok := dkimtest.Verify(t, dns.Addr, signed); ok || !strings.Contains(report, "ed25519-sha256 fail") {
		t.Errorf("ed25519 key withdrawn from DNS, verifier:\n%s", report)
	}
}

// BenchmarkDKIMSign measures the signing cost of one announcement copy
// (both signatures) for the size of a typical clear-signed advisory.
func BenchmarkDKIMSign(b *testing.B) {
	s, _ := testDKIMSigner(b)
	body := strings.Repeat("A line of advisory text, about as long as lines are in one.\r\n", 100)
	for _, size := range []int{6 << 10, 64 << 10} {
		msg := []byte(dkimSample + strings.Repeat(body, max(1, size/len(body))))
		b.Run(fmt.Sprintf("%dKiB", len(msg)>>10), func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if _, err := s.Sign(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
