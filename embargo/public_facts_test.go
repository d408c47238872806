package embargo_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/store"
)

// complete records a complete public advisory.
func (w *world) complete(id string) {
	w.t.Helper()
	w.mustDo(id, func(p *embargo.Op) error { return p.Set("title", "Overflow in the parser") })
	w.mustDo(id, func(p *embargo.Op) error { return p.Set("description", "A long header overflows a buffer.") })
	w.mustDo(id, func(p *embargo.Op) error { return p.Versions("libexample", "1.0", "1.4.2", "") })
}

// TestFactsDeclareVisibility: every fact is declared public or internal,
// and Public keeps exactly the public ones.
func TestFactsDeclareVisibility(t *testing.T) {
	f := embargo.Facts{Title: "T", Backports: map[string]string{"1.2": "wontfix"}, Notes: []string{"n"}, RejectReason: "r",
		DuplicateOf: "2026-001", ReleaseHeld: "description", BreakReason: "leaked"}
	p := f.Public() // panics on an undeclared field
	if p.Title != "T" || p.BreakReason != "leaked" || p.Backports != nil || p.Notes != nil || p.RejectReason != "" || p.DuplicateOf != "" || p.ReleaseHeld != "" {
		t.Errorf("Public() = %+v", p)
	}
	typ := reflect.TypeOf(f)
	for i := range typ.NumField() {
		if v := typ.Field(i).Tag.Get("vis"); v != "public" && v != "internal" {
			t.Errorf("Facts.%s has no vis tag", typ.Field(i).Name)
		}
	}
}

// TestScheduledReleaseHeldWhenIncomplete: at the public date an
// incomplete advisory is not released: nothing is announced, the
// coordinator is told once what is missing, the scheduler does not spin
// on it, and it is released at the next pass once complete, with none of
// the internal facts.
func TestScheduledReleaseHeldWhenIncomplete(t *testing.T) {
	w := newWorld(t)
	cora := w.person("Cora Coordinator", "cora@example.org")
	w.addTeam(cora)
	ctx := context.Background()
	id := w.confirmed(embargo.Private)
	date := w.clock.Now().Add(72 * time.Hour)
	w.mustDo(id, func(p *embargo.Op) error { return p.Set("title", "Overflow in the parser") })
	w.mustDo(id, func(p *embargo.Op) error { return p.Versions("libexample", "1.0", "1.4.2", "") })
	w.mustDo(id, func(p *embargo.Op) error {
		return p.Backport("1.2", "wontfix: INTERNALMARK customer Initech still on 1.2")
	})
	w.mustDo(id, func(p *embargo.Op) error { return p.Set("note", "INTERNALMARK call Initech first") })
	w.mustDo(id, func(p *embargo.Op) error { return p.SetEmbargo(date, "") })
	w.mustDo(id, func(p *embargo.Op) error { return p.Notify(nil) })
	n := len(w.queue())

	w.clock.Set(date)
	tk, err := w.desk.RunDue(ctx)
	if err != nil || len(tk.Released) != 0 {
		t.Fatalf("at the date: %+v %v", tk, err)
	}
	q := w.since(n)
	if len(find(q, "", "announce")) != 0 {
		t.Fatalf("an incomplete advisory was announced")
	}
	held := w.decrypt(cora, one(t, q, cora.Email, "release-held"))
	if !strings.Contains(held, "NOT RELEASED") || !strings.Contains(held, "Missing: description") || strings.Contains(held, "INTERNALMARK") {
		t.Errorf("held notice:\n%s", held)
	}
	if in := w.incident(id); in.State != store.IncidentPrenotified || in.Facts.ReleaseHeld != "description" {
		t.Errorf("after the hold: %s %q", in.State, in.Facts.ReleaseHeld)
	}
	if next, err := w.desk.NextDue(ctx); err != nil || !next.IsZero() {
		t.Errorf("NextDue of a held release = %v, %v: the scheduler would spin", next, err)
	}
	w.clock.Advance(time.Minute)
	if _, err := w.desk.RunDue(ctx); err != nil || len(w.since(n)) != len(q) {
		t.Errorf("a second pass queued more: %v", err)
	}
	if _, err := w.do(id, func(p *embargo.Op) error { return p.Publish(false, "", false) }); err == nil ||
		!strings.Contains(err.Error(), "missing: description") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("publish of the held incident: %v", err)
	}

	w.mustDo(id, func(p *embargo.Op) error { return p.Set("description", "A long header overflows a buffer.") })
	if tk, err := w.desk.RunDue(ctx); err != nil || len(tk.Released) != 1 {
		t.Fatalf("after completion: %+v %v", tk, err)
	}
	ann := one(t, w.queue(), "oss-security@lists.example.net", "announce")
	if !strings.Contains(string(ann.raw), "A long header overflows a buffer.") || strings.Contains(string(ann.raw), "INTERNALMARK") ||
		strings.Contains(string(ann.raw), "Initech") {
		t.Errorf("announcement:\n%s", ann.raw)
	}
	if in := w.incident(id); in.Facts.ReleaseHeld != "" {
		t.Errorf("still marked held: %q", in.Facts.ReleaseHeld)
	}
}

// TestForcedRelease: --force publishes an incomplete advisory with a
// placeholder description, never the internal facts; it cannot invent
// affected versions.
func TestForcedRelease(t *testing.T) {
	w := newWorld(t)
	id := w.confirmed(embargo.Public)
	w.mustDo(id, func(p *embargo.Op) error { return p.Set("workaround", "Reject long headers.") })
	w.mustDo(id, func(p *embargo.Op) error { return p.Backport("1.2", "wontfix: INTERNALMARK") })
	if _, err := w.do(id, func(p *embargo.Op) error { return p.Publish(false, "", true) }); err == nil ||
		!strings.Contains(err.Error(), "affected versions") {
		t.Errorf("forced without versions: %v", err)
	}
	w.mustDo(id, func(p *embargo.Op) error { return p.Versions("libexample", "1.0", "1.4.2", "") })
	if _, err := w.do(id, func(p *embargo.Op) error { return p.Publish(false, "", false) }); err == nil ||
		!strings.Contains(err.Error(), "missing: title, description") {
		t.Errorf("unforced: %v", err)
	}
	out := w.mustDo(id, func(p *embargo.Op) error { return p.Publish(false, "", true) })
	if !strings.Contains(out, "placeholder title, description") {
		t.Errorf("forced: %s", out)
	}
	ann := string(one(t, w.queue(), "oss-security@lists.example.net", "announce").raw)
	if strings.Contains(ann, "INTERNALMARK") || !strings.Contains(ann, "not published yet") || !strings.Contains(ann, "Security issue in libexample") {
		t.Errorf("announcement:\n%s", ann)
	}
	if _, err := w.desk.Published(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a, err := w.desk.Advisory(context.Background(), id); err != nil || a.Validate() != nil {
		t.Errorf("the page would not exist: %v", err)
	}
}
