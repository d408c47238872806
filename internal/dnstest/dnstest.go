// Package dnstest runs a real DNS server on a loopback port for tests:
// it answers from records given in zone-file syntax, over UDP and TCP,
// and never asks the Internet.
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server is an authoritative DNS server for the records it holds.
type Server struct {
	// Addr is the HOST:PORT it listens on, for UDP and TCP.
	Addr string

	mu  sync.RWMutex
	rrs []dns.RR
}

// Start starts a server on 127.0.0.1 holding records (one resource
// record each, in zone-file syntax, e.g.
// `example.org. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`). It stops when
// the test ends.
func Start(t testing.TB, records ...string) *Server {
	t.Helper()
	pc, ln, err := listen()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: pc.LocalAddr().String()}
	s.Set(t, records...)
	udp := &dns.Server{PacketConn: pc, Handler: s}
	tcp := &dns.Server{Listener: ln, Handler: s}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() {
		udp.Shutdown()
		tcp.Shutdown()
	})
	return s
}

// listen binds a UDP and a TCP socket on one loopback port. The TCP side
// of a port the kernel chose for UDP may be taken (another listener, an
// outgoing connection's local port): then it tries another port.
func listen() (net.PacketConn, net.Listener, error) {
	var last error
	for range 50 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		last = err
	}
	return nil, nil, fmt.Errorf("dnstest: no loopback port free for both UDP and TCP: %w", last)
}

// Set replaces every record the server holds.
func (s *Server) Set(t testing.TB, records ...string) {
	t.Helper()
	var rrs []dns.RR
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			t.Fatalf("dnstest: record %q: %v", r, err)
		}
		if rr != nil {
			rrs = append(rrs, rr)
		}
	}
	s.mu.Lock()
	s.rrs = rrs
	s.mu.Unlock()
}

// Add adds records to those the server holds.
func (s *Server) Add(t testing.TB, records ...string) {
	t.Helper()
	s.mu.RLock()
	have := make([]string, 0, len(s.rrs)+len(records))
	for _, rr := range s.rrs {
		have = append(have, rr.String())
	}
	s.mu.RUnlock()
	s.Set(t, append(have, records...)...)
}

// ServeDNS answers a query from the records: the ones of the asked name
// and type (CNAMEs followed), NXDOMAIN when the name has no record at all.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	s.mu.RLock()
	defer s.mu.RUnlock()
	name := strings.ToLower(q.Name)
	known := false
	for range 8 {
		var cname string
		for _, rr := range s.rrs {
			h := rr.Header()
			if strings.ToLower(h.Name) != name {
				continue
			}
			known = true
			switch {
			case h.Rrtype == q.Qtype || q.Qtype == dns.TypeANY:
				m.Answer = append(m.Answer, dns.Copy(rr))
			case h.Rrtype == dns.TypeCNAME:
				m.Answer = append(m.Answer, dns.Copy(rr))
				cname = strings.ToLower(rr.(*dns.CNAME).Target)
			}
		}
		if cname == "" || q.Qtype == dns.TypeCNAME {
			break
		}
		name = cname
	}
	if !known {
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}
