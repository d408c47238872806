package mailauth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/cvd-project/cvd/internal/dnstest"
)

// FuzzCheck feeds hostile envelopes and messages to the sender checks,
// against a loopback DNS server that publishes SPF, a DKIM key and DMARC
// for example.net: nothing panics, the rendered value stays one line, it
// survives the database round trip, and a message can only authenticate
// an address through the results themselves.
func FuzzCheck(f *testing.F) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	s := dnstest.Start(f, `example.net. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`sel._domainkey.example.net. 300 IN TXT "v=DKIM1; k=ed25519; p=`+base64.StdEncoding.EncodeToString(pub)+`"`,
		`_dmarc.example.net. 300 IN TXT "v=DMARC1; p=reject"`)
	c := &Checker{AuthServID: "mx.example.org", Resolver: NewResolver(s.Addr), Timeout: 2 * time.Second}

	plain := "From: Rita <rita@example.net>\r\nTo: security@example.org\r\nSubject: report\r\n\r\nThe parser crashes.\r\n"
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(plain), &dkim.SignOptions{Domain: "example.net", Selector: "sel", Signer: priv}); err != nil {
		f.Fatal(err)
	}
	for _, seed := range []struct{ helo, from, raw string }{
		{"mail.example.net", "rita@example.net", plain},
		{"mail.example.net", "rita@example.net", signed.String()},
		{"[127.0.0.1]", "", signed.String()},
		{"x", "a;spf=pass\r\nX: y@example.org", "From: <rita@example.net>\r\n\r\n"},
		{"mail.example.net", "rita@example.net", strings.Repeat("DKIM-Signature: v=1; a=ed25519-sha256; d=example.net; s=sel; h=from; bh=; b=\r\n", 8) + plain},
		{"", "", "From: <\xff@\u202eexample.net>\r\n\r\n"},
	} {
		f.Add(seed.helo, seed.from, []byte(seed.raw))
	}
	f.Fuzz(func(t *testing.T, helo, mailFrom string, raw []byte) {
		r := c.Check(context.Background(), "127.0.0.1:4567", helo, mailFrom, raw)
		v := r.String()
		if strings.ContainsAny(v, "\r\n") {
			t.Fatalf("value on more than one line: %q", v)
		}
		var back Results
		stored, err := r.Value()
		if err != nil {
			t.Fatalf("store: %v", err)
		}
		if err := back.Scan(stored); err != nil || back.String() != v {
			t.Fatalf("read back %q, %v; stored %q", back.String(), err, v)
		}
		for _, addr := range []string{"rita@example.net", normalize(mailFrom)} {
			if !r.AuthenticatedFor(addr) {
				continue
			}
			_, domain, _ := strings.Cut(normalize(addr), "@")
			if !(r.DMARC == Pass && r.FromDomain == domain) && !(r.SPF == Pass && normalize(r.MailFrom) == normalize(addr)) {
				t.Fatalf("%s authenticated without a pass: %+v", addr, r)
			}
		}
	})
}
