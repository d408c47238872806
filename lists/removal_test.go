package lists_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cvd-project/cvd/store"
)

// TestFrozenMemberQueuedCopiesDropped: a member frozen after failed
// deliveries loses their copies still queued, and the coordinators' freeze
// notice says so.
func TestFrozenMemberQueuedCopiesDropped(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.svc.CreateList(ctx, "2026-005", store.ListIncident, "")
	coord := w.person("Cora", "cora@example.org", "never")
	deb := w.person("Debian", "security@debian.example", "never")
	w.join("2026-005", coord, "coordinator")
	w.join("2026-005", deb, "downstream")
	if _, err := w.db.Enqueue(ctx, &store.OutMessage{Rcpts: []string{deb.Email}, Raw: []byte("Subject: x\r\n\r\nsealed copy\r\n"),
		Origin: store.OriginRelay, Kind: "post", Ref: "2026-005"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := w.svc.DeliveryFailed(ctx, "post", "2026-005", deb.Email, "550 5.1.1 user unknown"); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.lastTo(coord, "keyproblem"); !strings.Contains(got, "now frozen") || !strings.Contains(got, "1 queued copy not yet delivered dropped") {
		t.Errorf("freeze notice:\n%s", got)
	}
	es, err := w.db.ListQueue(ctx, store.QueueFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Rcpt == deb.Email && (e.State != store.QueueFailed || !strings.HasPrefix(e.LastReply, "dropped: member frozen")) {
			t.Errorf("Debian's copy is %s (%s)", e.State, e.LastReply)
		}
	}
}
