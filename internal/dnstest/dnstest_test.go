package dnstest

import (
	"context"
	"net"
	"testing"
)

func TestResolverAsksTheLoopbackServer(t *testing.T) {
	s := Start(t, `example.org. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`, `mx.example.org. 300 IN A 127.0.0.1`,
		`example.org. 300 IN MX 10 mx.example.org.`, `www.example.org. 300 IN CNAME mx.example.org.`)
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr)
	}}
	ctx := context.Background()
	if txt, err := r.LookupTXT(ctx, "example.org"); err != nil || len(txt) != 1 || txt[0] != "v=spf1 ip4:127.0.0.1 -all" {
		t.Errorf("TXT: %v %v", txt, err)
	}
	if mx, err := r.LookupMX(ctx, "example.org"); err != nil || len(mx) != 1 || mx[0].Host != "mx.example.org." {
		t.Errorf("MX: %v %v", mx, err)
	}
	if ips, err := r.LookupHost(ctx, "www.example.org"); err != nil || len(ips) != 1 || ips[0] != "127.0.0.1" {
		t.Errorf("CNAME to A: %v %v", ips, err)
	}
	if _, err := r.LookupTXT(ctx, "nothing.example.org"); err == nil {
		t.Error("a name without records resolved")
	} else if de, ok := err.(*net.DNSError); !ok || !de.IsNotFound {
		t.Errorf("a name without records: %v, want not found", err)
	}
	s.Set(t, `example.org. 300 IN TXT "v=spf1 -all"`)
	if txt, err := r.LookupTXT(ctx, "example.org"); err != nil || len(txt) != 1 || txt[0] != "v=spf1 -all" {
		t.Errorf("after Set: %v %v", txt, err)
	}
}
