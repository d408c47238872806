package mailauth

import (
	"context"
	"strings"
	"testing"

	"github.com/cvd-project/cvd/internal/dnstest"
)

func TestAuthenticatedFor(t *testing.T) {
	dmarcPass := Results{AuthServID: "mx", DMARC: Pass, FromDomain: "example.net", SPF: Fail, MailFrom: "x@other.example"}
	spfPass := Results{AuthServID: "mx", SPF: Pass, MailFrom: "rita@Example.NET", DMARC: None, FromDomain: "example.net"}
	for _, c := range []struct {
		r    Results
		addr string
		want bool
	}{
		{dmarcPass, "anyone@example.net", true},
		{dmarcPass, "anyone@EXAMPLE.net", true},
		{dmarcPass, "anyone@sub.example.net", false},
		{dmarcPass, "x@other.example", false},
		{spfPass, "rita@example.net", true},
		{spfPass, "Rita@example.net", false},
		{spfPass, "other@example.net", false},
		{Results{AuthServID: "mx", SPF: SoftFail, MailFrom: "rita@example.net"}, "rita@example.net", false},
		{Results{}, "rita@example.net", false},
	} {
		if got := c.r.AuthenticatedFor(c.addr); got != c.want {
			t.Errorf("%+v for %s: %v, want %v", c.r, c.addr, got, c.want)
		}
	}
}

// A sender cannot write results into the rendered value: the decision is
// taken on the fields, and the value keeps to one line.
func TestCheckAgainstLoopbackDNS(t *testing.T) {
	s := dnstest.Start(t, `example.net. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`)
	c := &Checker{AuthServID: "mx.example.org", Resolver: NewResolver(s.Addr)}
	raw := []byte("From: <rita@example.net>\r\nSubject: x\r\n\r\nbody\r\n")
	r := c.Check(context.Background(), "127.0.0.1:4567", "client.test", "rita@example.net", raw)
	if r.SPF != Pass || r.DMARC != None || len(r.DKIM) != 0 || !r.AuthenticatedFor("rita@example.net") {
		t.Errorf("results: %+v", r)
	}
	if got, want := r.String(), "mx.example.org; spf=pass smtp.mailfrom=rita@example.net; spf=none smtp.helo=client.test; dkim=none; dmarc=none header.from=example.net"; got != want {
		t.Errorf("value:\n%s\nwant\n%s", got, want)
	}
	forged := c.Check(context.Background(), "127.0.0.1:4567", "client.test", "a;spf=pass\r\nX: y@example.org", raw)
	if forged.AuthenticatedFor("rita@example.net") || strings.ContainsAny(forged.String(), "\r\n") {
		t.Errorf("forged sender: %+v %q", forged, forged.String())
	}
	var back Results
	v, _ := r.Value()
	if err := back.Scan(v); err != nil || back.String() != r.String() {
		t.Errorf("stored and read back: %+v %v", back, err)
	}
}
