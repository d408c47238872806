package store

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"
)

func TestKeyPinningKeepsHistory(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	k1 := PublicKey{Fingerprint: "aaaa1111", Armored: []byte("key one"), Created: t0.Add(-time.Hour)}
	k2 := PublicKey{Fingerprint: "BBBB2222", Armored: []byte("key two"), Created: t0, Expires: t0.AddDate(1, 0, 0)}

	if _, err := db.PinnedKey(ctx, "reporter@example.net"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no pin yet: %v", err)
	}
	if err := db.PinKey(ctx, "Reporter@Example.NET", k1, KeyChange{At: t0, Actor: "intake", Reason: "attached to report"}); err != nil {
		t.Fatal(err)
	}
	got, err := db.PinnedKey(ctx, "reporter@example.net")
	if err != nil || got.Fingerprint != "AAAA1111" || string(got.Armored) != "key one" || !got.Expires.IsZero() {
		t.Fatalf("pinned = %+v, %v", got, err)
	}

	// Another key for the same address is not pinned silently.
	var pe *PinnedError
	err = db.PinKey(ctx, "reporter@example.net", k2, KeyChange{At: t0.Add(time.Hour), Actor: "intake", Reason: "autocrypt"})
	if !errors.As(err, &pe) || pe.Fingerprint != "AAAA1111" {
		t.Fatalf("second key: %v", err)
	}
	if got, _ := db.PinnedKey(ctx, "reporter@example.net"); got.Fingerprint != "AAAA1111" {
		t.Fatalf("pin changed to %s", got.Fingerprint)
	}

	// Same key again with new content: a refresh, recorded.
	k1b := k1
	k1b.Armored, k1b.Revoked = []byte("key one, revoked"), true
	if err := db.PinKey(ctx, "reporter@example.net", k1b, KeyChange{At: t0.Add(2 * time.Hour), Actor: "intake"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.PinnedKey(ctx, "reporter@example.net"); !got.Revoked || string(got.Armored) != "key one, revoked" {
		t.Errorf("refresh not stored: %+v", got)
	}
	// Unchanged: nothing recorded.
	if err := db.PinKey(ctx, "reporter@example.net", k1b, KeyChange{At: t0.Add(3 * time.Hour), Actor: "intake"}); err != nil {
		t.Fatal(err)
	}

	if err := db.ReplaceKey(ctx, "reporter@example.net", k2, KeyChange{At: t0.Add(4 * time.Hour), Actor: "coordinator@example.org", Reason: "old key revoked"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.PinnedKey(ctx, "reporter@example.net"); got.Fingerprint != "BBBB2222" || !got.Expires.Equal(k2.Expires) {
		t.Errorf("after replace: %+v", got)
	}
	if err := db.Write(ctx, func(tx *sql.Tx) error {
		return UnpinKeyTx(ctx, tx, "reporter@example.net", KeyChange{At: t0.Add(5 * time.Hour), Actor: "admin", Reason: "member removed"})
	}); err != nil {
		t.Fatal(err)
	}

	hist, err := db.KeyHistory(ctx, "REPORTER@example.net")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"pinned  AAAA1111", "refreshed AAAA1111 AAAA1111", "replaced AAAA1111 BBBB2222", "unpinned AAAA1111 "}
	want[3] = "unpinned BBBB2222 "
	if len(hist) != len(want) {
		t.Fatalf("history %+v", hist)
	}
	for i, ev := range hist {
		if s := ev.Kind + " " + ev.OldFingerprint + " " + ev.NewFingerprint; s != want[i] {
			t.Errorf("event %d = %q, want %q", i, s, want[i])
		}
	}
	if hist[2].Actor != "coordinator@example.org" || hist[2].Reason != "old key revoked" || !hist[2].At.Equal(t0.Add(4*time.Hour)) {
		t.Errorf("replace event = %+v", hist[2])
	}
}
