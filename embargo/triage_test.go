package embargo_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/store"
)

// reportFrom spools a report from sender at the client address remote and
// routes it.
func (w *world) reportFrom(remote, sender, extra string) {
	w.t.Helper()
	ctx := context.Background()
	raw := fmt.Sprintf("From: <%s>\nTo: security@%s\nSubject: report\nMessage-ID: <%d.%s>\n%s\nIt crashes.\n", sender, domain, time.Now().UnixNano(), sender, extra)
	if _, err := w.db.Spool(ctx, store.Envelope{ReceivedAt: w.clock.Now(), RemoteAddr: remote, Helo: "client.example",
		MailFrom: sender, Rcpts: []string{"security@" + domain}}, []byte(raw)); err != nil {
		w.t.Fatal(err)
	}
	if _, _, err := w.router.RouteOnce(ctx, 0); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) counts() (incidents, waiting int) {
	w.t.Helper()
	ins, err := w.desk.List(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	ts, err := w.desk.TriageList(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	return len(ins), len(ts)
}

// TestIntakeLimits: per source network (/24, /64), per sender, the window,
// replies never held, and authenticated senders counted apart from forged
// mail in their name.
func TestIntakeLimits(t *testing.T) {
	w := newWorld(t)
	w.desk.IntakePolicy = embargo.IntakePolicy{PerSender: 2, PerNetwork: 3, Window: time.Hour, IPv4Prefix: 24, IPv6Prefix: 64}
	for i := range 4 {
		w.reportFrom(fmt.Sprintf("192.0.2.%d:25", 10+i), fmt.Sprintf("r%d@a.example", i), "")
	}
	if in, wait := w.counts(); in != 3 || wait != 1 {
		t.Fatalf("4 senders from one /24: %d incidents, %d waiting; want 3, 1", in, wait)
	}
	w.reportFrom("192.0.3.1:25", "other@b.example", "")
	w.reportFrom("[2001:db8:1:1::1]:25", "v6a@c.example", "")
	w.reportFrom("[2001:db8:1:1::2]:25", "v6b@c.example", "")
	w.reportFrom("[2001:db8:1:1:ffff::3]:25", "v6c@c.example", "")
	w.reportFrom("[2001:db8:1:1::4]:25", "v6d@c.example", "")
	w.reportFrom("[2001:db8:1:2::1]:25", "v6e@c.example", "")
	if in, wait := w.counts(); in != 8 || wait != 2 {
		t.Fatalf("after other networks: %d incidents, %d waiting; want 8, 2", in, wait)
	}
	// Loopback is not counted per network; the sender limit still holds.
	for range 3 {
		w.reportFrom("127.0.0.1:40000", "local@d.example", "")
	}
	if in, wait := w.counts(); in != 10 || wait != 3 {
		t.Fatalf("after 3 reports from one local sender: %d incidents, %d waiting; want 10, 3", in, wait)
	}
	// A reply into an incident's thread from a network over its limit is
	// routed to the incident, not held.
	ins, _ := w.desk.List(context.Background())
	sm, err := w.db.SpooledMessage(context.Background(), ins[0].SpoolID)
	if err != nil {
		t.Fatal(err)
	}
	mid := strings.TrimSpace(strings.SplitN(strings.SplitN(string(sm.Raw), "Message-ID:", 2)[1], "\n", 2)[0])
	w.reportFrom("192.0.2.99:25", "r0@a.example", "In-Reply-To: "+mid+"\n")
	if in, wait := w.counts(); in != 10 || wait != 3 {
		t.Fatalf("after a reply: %d incidents, %d waiting; want 10, 3", in, wait)
	}
	// An hour later the network may report again.
	w.clock.Advance(61 * time.Minute)
	w.reportFrom("192.0.2.50:25", "late@a.example", "")
	if in, wait := w.counts(); in != 11 || wait != 3 {
		t.Fatalf("an hour later: %d incidents, %d waiting; want 11, 3", in, wait)
	}

	// Forged mail in Rita's name does not use up her limit.
	w.desk.Authenticated = func(sm *store.SpooledMessage) bool { return strings.HasPrefix(sm.RemoteAddr, "198.51.100.") }
	for i := range 3 {
		w.reportFrom(fmt.Sprintf("203.0.113.%d:25", i), "rita@reporter.example", "")
		w.reportFrom(fmt.Sprintf("203.0.114.%d:25", i), "rita@reporter.example", "")
	}
	if in, wait := w.counts(); in != 13 || wait != 7 {
		t.Fatalf("after 6 forged reports: %d incidents, %d waiting; want 13, 7", in, wait)
	}
	w.reportFrom("198.51.100.1:25", "rita@reporter.example", "")
	if in, wait := w.counts(); in != 14 || wait != 7 {
		t.Fatalf("Rita's authenticated report: %d incidents, %d waiting; want 14, 7", in, wait)
	}
}
