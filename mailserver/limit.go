package mailserver

import (
	"container/list"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cvd-project/cvd/metrics"
)

// connTracker limits connections in all and per client IP, and knows which
// connections are transferring a message, so that a shutdown can finish
// those and end the others with 421.
type connTracker struct {
	max, perIP int
	// refusal is the line a refused connection gets, for a reason.
	refusal func(reason string) string
	// onRefuse, when set, is told of each refused connection.
	onRefuse func(code string)

	mu       sync.Mutex
	byIP     map[string]int
	all      map[*trackedConn]struct{}
	draining bool
}

func newConnTracker(max, perIP int) *connTracker {
	return &connTracker{max: max, perIP: perIP, byIP: map[string]int{}, all: map[*trackedConn]struct{}{},
		refusal: func(reason string) string { return "421 4.7.0 " + reason + ", try again later\r\n" }}
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
		ip := addressKey(remoteIP(c))
		t := l.t
		t.mu.Lock()
		reason, code := "", ""
		switch {
		case len(t.all) >= t.max:
			reason, code = "too many connections", metrics.RefusedTooManyConns
		case t.byIP[ip] >= t.perIP:
			reason, code = "too many connections from your address", metrics.RefusedTooManyFromAddr
		}
		if reason != "" {
			t.mu.Unlock()
			if t.onRefuse != nil {
				t.onRefuse(code)
			}
			l.log.Warn("connection refused", "remote", c.RemoteAddr().String(), "reason", reason)
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte(t.refusal(reason)))
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

// failureCounter counts failures per key within a sliding window, in
// bounded memory: beyond max keys, the key whose last failure is oldest is
// forgotten first, one at a time.
type failureCounter struct {
	window time.Duration
	max    int
	keep   int // timestamps kept per key: the highest limit checked

	mu   sync.Mutex
	keys map[string]*list.Element // value: *failures
	lru  list.List                // front: most recent failure
}

type failures struct {
	key string
	at  []time.Time // ascending, at most keep
}

func newFailureCounter(window time.Duration, max, keep int) *failureCounter {
	return &failureCounter{window: window, max: max, keep: keep, keys: map[string]*list.Element{}}
}

// count returns the failures of key within the window before now.
func (c *failureCounter) count(key string, now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.keys[key]
	if e == nil {
		return 0
	}
	f := e.Value.(*failures)
	i := 0
	for i < len(f.at) && now.Sub(f.at[i]) >= c.window {
		i++
	}
	f.at = f.at[i:]
	if len(f.at) == 0 {
		c.lru.Remove(e)
		delete(c.keys, key)
	}
	return len(f.at)
}

// add records a failure of key at now.
func (c *failureCounter) add(key string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.keys[key]
	if e == nil {
		e = c.lru.PushFront(&failures{key: key})
		c.keys[key] = e
		for len(c.keys) > c.max {
			old := c.lru.Back()
			c.lru.Remove(old)
			delete(c.keys, old.Value.(*failures).key)
		}
	} else {
		c.lru.MoveToFront(e)
	}
	f := e.Value.(*failures)
	f.at = append(f.at, now)
	if len(f.at) > c.keep {
		f.at = f.at[len(f.at)-c.keep:]
	}
}

// reset forgets key.
func (c *failureCounter) reset(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.keys[key]; e != nil {
		c.lru.Remove(e)
		delete(c.keys, key)
	}
}

// len is the number of keys remembered.
func (c *failureCounter) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.keys)
}

// addressKey is the unit a client address is counted in: the address for
// IPv4, its /64 network for IPv6 (what one customer usually gets).
func addressKey(ip string) string {
	p := net.ParseIP(ip)
	if p == nil || p.To4() != nil {
		return ip
	}
	return p.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
