package mailserver

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// connTracker limits connections in all and per client IP, and knows which
// connections are transferring a message, so that a shutdown can finish
// those and end the others with 421.
type connTracker struct {
	max, perIP int

	mu       sync.Mutex
	byIP     map[string]int
	all      map[*trackedConn]struct{}
	draining bool
}

func newConnTracker(max, perIP int) *connTracker {
	return &connTracker{max: max, perIP: perIP, byIP: map[string]int{}, all: map[*trackedConn]struct{}{}}
}

func (t *connTracker) wrap(l net.Listener, log *slog.Logger) net.Listener {
	return &limitListener{Listener: l, t: t, log: log}
}

// drain makes every connection that is not transferring a message time out
// at its next read; go-smtp answers that with 421 and closes it.
func (t *connTracker) drain() {
	t.mu.Lock()
	t.draining = true
	conns := make([]*trackedConn, 0, len(t.all))
	for c := range t.all {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		if !c.inData.Load() {
			c.Conn.SetReadDeadline(time.Now())
		}
	}
}

func (t *connTracker) isDraining() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.draining
}

type limitListener struct {
	net.Listener
	t   *connTracker
	log *slog.Logger
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		t := l.t
		t.mu.Lock()
		reason := ""
		switch {
		case len(t.all) >= t.max:
			reason = "too many connections"
		case t.byIP[ip] >= t.perIP:
			reason = "too many connections from your address"
		}
		if reason != "" {
			t.mu.Unlock()
			l.log.Warn("connection refused", "remote", c.RemoteAddr().String(), "reason", reason)
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("421 4.7.0 " + reason + ", try again later\r\n"))
			c.Close()
			continue
		}
		tc := &trackedConn{Conn: c, t: t, ip: ip}
		t.byIP[ip]++
		t.all[tc] = struct{}{}
		t.mu.Unlock()
		return tc, nil
	}
}

func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

type trackedConn struct {
	net.Conn
	t        *connTracker
	ip       string
	inData   atomic.Bool
	poisoned atomic.Bool
	once     sync.Once
}

// poison makes the connection end with 421 once the current reply is
// written: nothing more is read from it.
func (c *trackedConn) poison() {
	if c != nil {
		c.poisoned.Store(true)
	}
}

func (c *trackedConn) stopping() bool {
	return c.poisoned.Load() || c.t.isDraining()
}

// SetReadDeadline keeps a draining connection's deadline in the past, so
// that go-smtp, which sets a fresh deadline before each command, cannot
// start another transaction.
func (c *trackedConn) SetReadDeadline(d time.Time) error {
	if !c.inData.Load() && c.stopping() {
		d = time.Now()
	}
	return c.Conn.SetReadDeadline(d)
}

func (c *trackedConn) SetDeadline(d time.Time) error {
	if err := c.Conn.SetWriteDeadline(d); err != nil {
		return err
	}
	return c.SetReadDeadline(d)
}

func (c *trackedConn) setInData(v bool) {
	if c == nil {
		return
	}
	c.inData.Store(v)
	if !v && c.stopping() {
		c.Conn.SetReadDeadline(time.Now())
	}
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.all, c)
		if c.t.byIP[c.ip]--; c.t.byIP[c.ip] <= 0 {
			delete(c.t.byIP, c.ip)
		}
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}

// trackedOf finds the tracked connection under c, which may be a TLS
// connection after STARTTLS.
func trackedOf(c net.Conn) *trackedConn {
	for {
		switch v := c.(type) {
		case *trackedConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
}
