package mailserver

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// The failure counter never holds more than its bound, and forgets the
// keys whose last failure is oldest first, one by one: a flood of new keys
// does not wipe what it knows about the recent ones.
func TestFailureCounterBound(t *testing.T) {
	const max = 1000
	c := newFailureCounter(time.Hour, max, 3)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 * max {
		c.add(fmt.Sprintf("k%d", i), now.Add(time.Duration(i)*time.Millisecond))
		if n := c.len(); n > max {
			t.Fatalf("%d keys after %d failures, bound %d", n, i+1, max)
		}
	}
	at := now.Add(time.Minute)
	if c.count("k0", at) != 0 || c.count(fmt.Sprintf("k%d", 4*max-1), at) != 0 {
		t.Error("the oldest keys are still remembered")
	}
	for i := 4 * max; i < 5*max; i++ {
		if c.count(fmt.Sprintf("k%d", i), at) != 1 {
			t.Fatalf("recent key k%d forgotten", i)
		}
	}
	// A key that fails again moves to the front: the next new key
	// evicts another.
	old := fmt.Sprintf("k%d", 4*max)
	c.add(old, at)
	c.add("new", at)
	if c.count(old, at) != 2 || c.count(fmt.Sprintf("k%d", 4*max+1), at) != 0 {
		t.Error("eviction is not by last failure")
	}
	// Timestamps per key are bounded too, and expire with the window.
	for range 100 {
		c.add("busy", at)
	}
	if n := c.count("busy", at); n != 3 {
		t.Errorf("busy key counts %d, want its bound 3", n)
	}
	if n := c.count("busy", at.Add(time.Hour)); n != 0 || c.count(old, at.Add(time.Hour)) != 0 {
		t.Errorf("failures outlive the window: %d", n)
	}
}

// The login limiter blocks an account only from the address that failed,
// and an address after its own failures on any account.
func TestLoginLimiterPerAddress(t *testing.T) {
	l := newLoginLimiter(3, 5, 15*time.Minute)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 3 {
		l.fail("cora@example.org", "192.0.2.1", now)
	}
	if got := l.blocked("cora@example.org", "192.0.2.1", now); got == "" {
		t.Error("attacking address not blocked")
	}
	if got := l.blocked("cora@example.org", "198.51.100.7", now); got != "" {
		t.Errorf("another address is blocked: %s", got)
	}
	// A success elsewhere does not unblock the attacker; his own account's
	// success does not reset the address count.
	l.success("cora@example.org", "198.51.100.7")
	if l.blocked("cora@example.org", "192.0.2.1", now) == "" {
		t.Error("a success from elsewhere unblocked the attacker")
	}
	l.fail("a@example.org", "192.0.2.1", now)
	l.success("mallory@example.org", "192.0.2.1")
	l.fail("b@example.org", "192.0.2.1", now)
	if got := l.blocked("c@example.org", "192.0.2.1", now); got != "address" {
		t.Errorf("address after 5 failures: %q", got)
	}
	// IPv6 counts by /64.
	for i := range 5 {
		l.fail("x", fmt.Sprintf("2001:db8:1:2::%x", i+1), now)
	}
	if l.blocked("y", "2001:db8:1:2:ffff::1", now) != "address" || l.blocked("y", "2001:db8:1:3::1", now) != "" {
		t.Error("IPv6 is not counted per /64")
	}
	if l.blocked("cora@example.org", "192.0.2.1", now.Add(15*time.Minute)) != "" {
		t.Error("block outlives the window")
	}
}

// An address holds at most MaxConnectionsPerIP IMAP connections; more are
// told BYE at once, and a closed one frees its place.
func TestIMAPConnectionsPerAddress(t *testing.T) {
	srv := NewIMAPServer(nil, IMAPOptions{MaxConnectionsPerIP: 3, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	dial := func(local string) (net.Conn, string) {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		return c, line
	}
	var open []net.Conn
	for i := range 3 {
		c, line := dial("127.0.0.2")
		if !strings.HasPrefix(line, "* OK") {
			t.Fatalf("connection %d: %q", i, line)
		}
		open = append(open, c)
	}
	c, line := dial("127.0.0.2")
	c.Close()
	if !strings.HasPrefix(line, "* BYE too many connections from your address") {
		t.Errorf("fourth connection from one address: %q", line)
	}
	c, line = dial("127.0.0.1")
	c.Close()
	if !strings.HasPrefix(line, "* OK") {
		t.Errorf("another address: %q", line)
	}
	open[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, line = dial("127.0.0.2")
		c.Close()
		if strings.HasPrefix(line, "* OK") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed connection does not free its place: %q", line)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range open[1:] {
		c.Close()
	}
}
