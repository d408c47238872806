package ops

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/internal/dnstest"
	"github.com/cvd-project/cvd/mailserver"
)

type setup struct {
	c       *config.Config
	key     *crypto.Key
	expires time.Time
	web     *httptest.Server
	dir     string
}

// newSetup is a configuration whose keys, certificate and security.txt
// exist, in mx mode, taking mail on port 25.
func newSetup(t *testing.T) *setup {
	t.Helper()
	s := &setup{dir: t.TempDir(), expires: time.Now().Add(300 * 24 * time.Hour)}
	s.web = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Contact: mailto:security@example.org\nExpires: %s\n", s.expires.UTC().Format(time.RFC3339))
	}))
	t.Cleanup(s.web.Close)
	toml := fmt.Sprintf("domain = \"example.org\"\nhostname = \"mail.example.org\"\n[smtp]\nlisten = \":25\"\n[delivery]\nmode = \"mx\"\n[web]\nbase_url = %q\n", s.web.URL)
	c, err := config.Parse([]byte(toml), filepath.Join(s.dir, "cvd.toml"), s.dir)
	if err != nil {
		t.Fatal(err)
	}
	s.c = c
	for _, k := range c.DKIM.Keys {
		pem, err := mailserver.GenerateDKIMKey(k.Kind)
		if err != nil {
			t.Fatal(err)
		}
		write(t, k.KeyFile, pem)
	}
	s.cert(t, "mail.example.org")
	priv, _, err := crypto.GenerateKey("security team", "security@example.org", crypto.KindCurve25519)
	if err != nil {
		t.Fatal(err)
	}
	if s.key, err = crypto.ParseKey(priv); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *setup) cert(t *testing.T, host string) {
	cert, key, err := mailserver.SelfSignedCert([]string{host}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	write(t, s.c.TLS.CertFile, cert)
	write(t, s.c.TLS.KeyFile, key)
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o700)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func resolverFor(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// zone is what 'cvd dns' prints, as records (the optional ones left out).
func zone(t *testing.T, c *config.Config) []string {
	rs, err := Records(c)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		if !r.Optional {
			out = append(out, r.Zone())
		}
	}
	return out
}

func wrong(cs []Check) []string {
	var out []string
	for _, c := range cs {
		if !c.OK {
			out = append(out, c.Item)
		}
	}
	return out
}

// The records Records prints make every check pass, and each broken zone
// or file turns exactly its own item wrong.
func TestDoctorGreenThenEachBreakage(t *testing.T) {
	s := newSetup(t)
	good := zone(t, s.c)
	dns := dnstest.Start(t, good...)
	run := func() []Check {
		return Doctor(context.Background(), s.c, DoctorOptions{Resolver: resolverFor(dns.Addr), Now: time.Now(), ProjectKey: s.key})
	}
	if w := wrong(run()); len(w) != 0 {
		var b strings.Builder
		PrintChecks(&b, run())
		t.Fatalf("fresh zone: wrong %v\n%s", w, b.String())
	}

	without := func(prefix string, extra ...string) []string {
		var out []string
		for _, r := range good {
			if !strings.HasPrefix(r, prefix) {
				out = append(out, r)
			}
		}
		return append(out, extra...)
	}
	otherKey, _ := mailserver.GenerateDKIMKey("rsa")
	ok2, _ := mailserver.ParseDKIMKey(otherKey)
	otherRec, _ := mailserver.DKIMRecord(ok2)
	for _, tc := range []struct {
		item    string
		records []string
	}{
		{"mx", without("example.org. 3600 IN MX", "example.org. 3600 IN MX 10 mx.elsewhere.example.")},
		{"spf", without(`example.org. 3600 IN TXT "v=spf1`)},
		{"spf", append(slices.Clone(good), `example.org. 3600 IN TXT "v=spf1 -all"`)},
		{"spf", without(`example.org. 3600 IN TXT "v=spf1`, `example.org. 3600 IN TXT "v=spf1 a:other.example ~all"`)},
		{"dkim/cvd-rsa", without("cvd-rsa._domainkey")},
		{"dkim/cvd-rsa", without("cvd-rsa._domainkey", "cvd-rsa._domainkey.example.org. 3600 IN TXT "+mailserver.SplitTXT(otherRec))},
		{"dkim/cvd-ed25519", without("cvd-ed25519._domainkey")},
		{"dmarc", without("_dmarc.")},
	} {
		dns.Set(t, tc.records...)
		if w := wrong(run()); !slices.Equal(w, []string{tc.item}) {
			t.Errorf("zone broken for %s: wrong items %v", tc.item, w)
		}
	}
	dns.Set(t, good...)

	s.cert(t, "other.example.org")
	if w := wrong(run()); !slices.Equal(w, []string{"tls"}) {
		t.Errorf("certificate for another host: wrong items %v", w)
	}
	s.cert(t, "mail.example.org")

	s.expires = time.Now().Add(10 * 24 * time.Hour)
	if w := wrong(run()); !slices.Equal(w, []string{"security.txt"}) {
		t.Errorf("security.txt expiring in 10 days: wrong items %v", w)
	}
	s.expires = time.Now().Add(300 * 24 * time.Hour)

	cs := Doctor(context.Background(), s.c, DoctorOptions{Resolver: resolverFor(dns.Addr), Now: time.Now(), ProjectKey: s.key, MinFreeBytes: 1 << 62})
	if w := wrong(cs); !slices.Equal(w, []string{"disk"}) {
		t.Errorf("disk below the minimum: wrong items %v", w)
	}
	s.c.Delivery.Mode = "outbox"
	if w := wrong(run()); !slices.Equal(w, []string{"delivery"}) {
		t.Errorf("outbox mode: wrong items %v", w)
	}
}
