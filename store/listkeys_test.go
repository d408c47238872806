package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestListKeysAreScopedToTheirList(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	global := PublicKey{Fingerprint: "AAAA1111", Armored: []byte("global key"), Created: t0}
	local := PublicKey{Fingerprint: "BBBB2222", Armored: []byte("list key"), Created: t0}
	a := &List{Name: "2026-001", Kind: ListIncident, CreatedAt: t0}
	b := &List{Name: "2026-002", Kind: ListIncident, CreatedAt: t0}
	err := db.Write(ctx, func(tx *sql.Tx) error {
		if err := CreateListTx(ctx, tx, a); err != nil {
			return err
		}
		if err := CreateListTx(ctx, tx, b); err != nil {
			return err
		}
		if err := PinKeyTx(ctx, tx, "fred@example.org", global, KeyChange{At: t0, Actor: "cli", Reason: "admin"}); err != nil {
			return err
		}
		return SetListKeyTx(ctx, tx, a.ID, a.Name, "Fred@Example.org", local, "x-add-key by cora@example.org", KeyChange{At: t0.Add(time.Hour), Actor: "cora@example.org"})
	})
	if err != nil {
		t.Fatal(err)
	}
	key := func(l *List, email string) string {
		var fp string
		err := db.Read(ctx, func(tx *sql.Tx) error {
			k, err := KeyForListTx(ctx, tx, l.ID, email)
			if err == nil {
				fp = k.Fingerprint
			}
			return err
		})
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		return fp
	}
	if got := key(a, "fred@example.org"); got != "BBBB2222" {
		t.Errorf("on %s: %q, want the list's key", a.Name, got)
	}
	if got := key(b, "fred@example.org"); got != "AAAA1111" {
		t.Errorf("on %s: %q, want the global pin", b.Name, got)
	}
	if got, _ := db.PinnedKey(ctx, "fred@example.org"); got.Fingerprint != "AAAA1111" {
		t.Errorf("the list key changed the global pin to %s", got.Fingerprint)
	}
	if got := key(b, "nobody@example.org"); got != "" {
		t.Errorf("unknown address has key %q", got)
	}

	var dropped []string
	err = db.Write(ctx, func(tx *sql.Tx) (err error) {
		dropped, err = DropListKeysTx(ctx, tx, "fred@example.org", KeyChange{At: t0.Add(2 * time.Hour), Actor: "cvd.toml", Reason: "configured"})
		return err
	})
	if err != nil || len(dropped) != 1 || dropped[0] != a.Name {
		t.Fatalf("dropped %v, %v", dropped, err)
	}
	if got := key(a, "fred@example.org"); got != "AAAA1111" {
		t.Errorf("after the drop: %q, want the global pin", got)
	}
	hist, err := db.KeyHistory(ctx, "fred@example.org")
	if err != nil || len(hist) != 3 {
		t.Fatalf("history %+v, %v", hist, err)
	}
	if h := hist[1]; h.Kind != "pinned" || h.NewFingerprint != "BBBB2222" || !strings.Contains(h.Reason, "on list 2026-001 only: x-add-key by cora@example.org") {
		t.Errorf("list pin in the history: %+v", h)
	}
	if h := hist[2]; h.Kind != "unpinned" || h.OldFingerprint != "BBBB2222" || !strings.Contains(h.Reason, "2026-001") {
		t.Errorf("drop in the history: %+v", h)
	}
}
