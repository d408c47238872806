package mailserver

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/dnstest"
	"github.com/cvd-project/cvd/store"
)

// stsWorld is a loopback MTA-STS setup: a DNS server for the _mta-sts
// TXT records, an HTTPS server (test CA) answering for every
// mta-sts.DOMAIN, and the policy it serves.
type stsWorld struct {
	dns     *dnstest.Server
	policy  atomic.Value // string
	fetches atomic.Int32
	sts     *MTASTS
}

func newSTSWorld(t *testing.T) *stsWorld {
	w := &stsWorld{dns: dnstest.Start(t)}
	w.policy.Store("")
	certPEM, keyPEM, err := SelfSignedCert([]string{"mta-sts.a.example", "mta-sts.b.example"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := tls.X509KeyPair(certPEM, keyPEM)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(rw, r)
			return
		}
		w.fetches.Add(1)
		fmt.Fprint(rw, w.policy.Load().(string))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: newPool(t, certPEM)},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, w.dns.Addr)
	}}
	w.sts = &MTASTS{Resolver: res, HTTP: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	return w
}

// TestMTASTSEnforce: a domain whose MTA-STS policy is enforce gets mail
// only over TLS verified for an MX host the policy names; an untrusted
// certificate or an MX outside the policy defers the mail; without a
// policy, delivery stays opportunistic; a require_tls domain is treated
// as enforce.
func TestMTASTSEnforce(t *testing.T) {
	trusted, client := testTLS(t) // valid for localhost and 127.0.0.1
	otherPEM, otherKey, _ := SelfSignedCert([]string{"localhost"}, time.Now())
	otherCert, _ := tls.X509KeyPair(otherPEM, otherKey)
	untrusted := &tls.Config{Certificates: []tls.Certificate{otherCert}}
	const policy = "version: STSv1\nmode: enforce\nmx: localhost\nmax_age: 86400\n"

	for _, tc := range []struct {
		name      string
		serverTLS *tls.Config
		txt       bool
		mx        string
		require   bool
		want      string // queue state
		reply     string
	}{
		{"enforce, verified", trusted, true, "localhost.", false, store.QueueSent, ""},
		{"enforce, untrusted certificate", untrusted, true, "localhost.", false, store.QueueDeferred, "certificate"},
		{"enforce, MX outside the policy", trusted, true, "127.0.0.1.", false, store.QueueDeferred, "matches its policy"},
		{"enforce, no STARTTLS", nil, true, "localhost.", false, store.QueueDeferred, "STARTTLS"},
		{"no policy, untrusted certificate", untrusted, false, "localhost.", false, store.QueueSent, ""},
		{"require_tls, untrusted certificate", untrusted, false, "localhost.", true, store.QueueDeferred, "certificate"},
		{"require_tls, verified", trusted, false, "localhost.", true, store.QueueSent, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newSTSWorld(t)
			w.policy.Store(policy)
			if tc.txt {
				w.dns.Add(t, `_mta-sts.a.example. 300 IN TXT "v=STSv1; id=20261129"`)
			}
			sink := newTestSink(t, tc.serverTLS, false)
			_, port, _ := net.SplitHostPort(sink.Addr)
			p, _ := strconv.Atoi(port)
			opts := DeliveryOptions{Mode: ModeMX, Resolver: stubResolver{"a.example": {{Host: tc.mx, Pref: 10}}}, MXPort: p,
				MTASTS: w.sts, MXRootCAs: client.RootCAs, PollInterval: time.Hour}
			if tc.require {
				opts.RequireTLS = []string{"a.example"}
			}
			db := openQueueDB(t, t.TempDir())
			wk := mustWorker(t, db, opts)
			enqueue(t, db, time.Now(), "m1", "rcpt@a.example")
			runWorker(t, wk)
			waitIdle(t, wk, db)
			e := entries(t, db)["rcpt@a.example"]
			if e.State != tc.want || !strings.Contains(e.LastReply, tc.reply) {
				t.Errorf("state %s (%q), want %s containing %q", e.State, e.LastReply, tc.want, tc.reply)
			}
			if got := len(sink.Txns()); (tc.want == store.QueueSent) != (got == 1) {
				t.Errorf("%d transactions at the MX", got)
			}
		})
	}
}

// TestMTASTSPolicyCache: a policy is fetched once while its id stays,
// refetched when the id changes, and kept when the HTTPS server fails.
func TestMTASTSPolicyCache(t *testing.T) {
	w := newSTSWorld(t)
	w.policy.Store("version: STSv1\nmode: enforce\nmx: mx1.b.example\nmx: *.mx.b.example\nmax_age: 600\n")
	w.dns.Add(t, `_mta-sts.b.example. 300 IN TXT "v=STSv1; id=1"`)
	ctx := context.Background()
	for range 3 {
		p, err := w.sts.Policy(ctx, "b.example")
		if err != nil || p == nil || p.Mode != "enforce" || !p.Matches("mx1.b.example.") || !p.Matches("a.mx.b.example") || p.Matches("a.b.mx.b.example") || p.Matches("mx2.b.example") {
			t.Fatalf("policy %+v, %v", p, err)
		}
	}
	if n := w.fetches.Load(); n != 1 {
		t.Errorf("%d fetches for an unchanged id, want 1", n)
	}
	w.policy.Store("version: STSv1\nmode: testing\nmx: mx1.b.example\nmax_age: 600\n")
	w.dns.Set(t, `_mta-sts.b.example. 300 IN TXT "v=STSv1; id=2"`)
	if p, _ := w.sts.Policy(ctx, "b.example"); p == nil || p.Mode != "testing" {
		t.Errorf("new id: policy %+v", p)
	}
	w.policy.Store("garbage")
	w.dns.Set(t, `_mta-sts.b.example. 300 IN TXT "v=STSv1; id=3"`)
	if p, _ := w.sts.Policy(ctx, "b.example"); p == nil || p.Mode != "testing" {
		t.Errorf("broken new policy: cached one not kept: %+v", p)
	}
	if p, err := w.sts.Policy(ctx, "none.example"); p != nil || err != nil {
		t.Errorf("domain without policy: %+v, %v", p, err)
	}
}
