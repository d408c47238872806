package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// listFor makes a list key the gpg users import and returns it with the
// users' keys and the list's own (last), and the outer header of a post
// with Message-ID id.
func listFor(t *testing.T, users []*gpgtest.User, id string) (*crypto.Key, []*crypto.Key, textproto.Header) {
	t.Helper()
	priv, _, err := crypto.GenerateKey("List", "security+2026-001@example.org", crypto.KindCurve25519)
	if err != nil {
		t.Fatal(err)
	}
	list, err := crypto.ParseKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := list.ArmoredPublic()
	if err != nil {
		t.Fatal(err)
	}
	var keys []*crypto.Key
	for _, u := range users {
		u.Import(pub)
		k, err := crypto.ParseKey(u.Pub)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	var outer textproto.Header
	outer.Set("From", "Security list <security+2026-001@example.org>")
	outer.Set("To", "security+2026-001@example.org")
	outer.Set("Message-Id", id)
	return list, append(keys, list.Public()), outer
}

// sharedFanout seals a post to the gpg users' keys and queues one copy
// per user with its body stored once, as a list post does; the list key
// gets the fan-out's last copy (the archive's). The users import the
// list's public key. It returns the fan-out, the queued message IDs in
// the users' order, and the list key.
func sharedFanout(t *testing.T, db *DB, users []*gpgtest.User) (*crypto.Fanout, []int64, *crypto.Key) {
	t.Helper()
	ctx := context.Background()
	list, keys, outer := listFor(t, users, "<post-1@example.org>")
	inner := "Subject: heap overflow\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + strings.Repeat("the patch line\r\n", 3000)
	f, err := crypto.NewFanout([]byte(inner), outer, list, keys, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	err = db.Write(ctx, func(tx *sql.Tx) error {
		body, err := AddSharedBodyTx(ctx, tx, f.Shared())
		if err != nil {
			return err
		}
		for i, u := range users {
			id, err := EnqueueTx(ctx, tx, &OutMessage{Rcpts: []string{u.Email}, Raw: f.Head(i), Body: body,
				Origin: OriginRelay, Kind: "post", Ref: "2026-001", CreatedAt: t0})
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return f, ids, list
}

// Copies queued with one shared body are delivered byte for byte as the
// fan-out wrote them, each opens with its own member's gpg and no other,
// and their recorded size is their real size.
func TestSharedBodyCopies(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	users := []*gpgtest.User{
		gpgtest.New(t, "Alice", "alice@example.net", "never"),
		gpgtest.New(t, "Bob", "bob@example.com", "never"),
		gpgtest.New(t, "Carol", "carol@example.net", "never"),
	}
	plain, err := db.Enqueue(ctx, testMsg("dave@example.net"))
	if err != nil {
		t.Fatal(err)
	}
	f, ids, _ := sharedFanout(t, db, users)
	if n := countBodies(t, db); n != 1 {
		t.Fatalf("%d shared bodies stored, want 1", n)
	}

	bs, err := db.ClaimQueue(ctx, t0, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64][]byte{}
	for _, b := range bs {
		got[b.MessageID] = b.Raw
	}
	if !bytes.HasPrefix(got[plain], []byte("Auto-Submitted: auto-generated\r\nFrom: security@example.org")) {
		t.Fatalf("plain message claimed as %q", got[plain])
	}
	for i, u := range users {
		want := f.AppendCopy(nil, i)
		if !bytes.Equal(got[ids[i]], want) {
			t.Fatalf("copy for %s claimed as %d bytes, differs from the fan-out's %d", u.Email, len(got[ids[i]]), len(want))
		}
		raw, err := db.QueuedRaw(ctx, ids[i])
		if err != nil || !bytes.Equal(raw, want) {
			t.Fatalf("QueuedRaw of the copy for %s differs (%v)", u.Email, err)
		}
		var size int
		if err := db.Read(ctx, func(tx *sql.Tx) error {
			return tx.QueryRowContext(ctx, `SELECT size FROM queue_msg WHERE id = ?`, ids[i]).Scan(&size)
		}); err != nil || size != len(want) {
			t.Fatalf("size of the copy for %s recorded as %d (%v), is %d", u.Email, size, err, len(want))
		}
		text, status, err := u.Decrypt(got[ids[i]])
		if err != nil || !gpgtest.HasStatus(status, "GOODSIG") || !strings.Contains(text, "the patch line") {
			t.Fatalf("%s cannot read their copy: %v\n%s", u.Email, err, status)
		}
		other := users[(i+1)%len(users)]
		if _, _, err := other.Decrypt(got[ids[i]]); err == nil {
			t.Fatalf("%s decrypted the copy for %s", other.Email, u.Email)
		}
	}
}

// The shared body goes with the last message that names it, whether the
// messages are dropped or purged; a message with a shared body is only a
// relayed one, and a body that is not a fan-out's is refused.
func TestSharedBodyLifetime(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	users := []*gpgtest.User{
		gpgtest.New(t, "Alice", "alice@example.net", "never"),
		gpgtest.New(t, "Bob", "bob@example.net", "never"),
	}
	bodies := func() int { t.Helper(); return countBodies(t, db) }
	rows := func(msg int64) []QueueEntry {
		t.Helper()
		es, err := db.ListQueue(ctx, QueueFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var out []QueueEntry
		for _, e := range es {
			if e.MessageID == msg {
				out = append(out, e)
			}
		}
		return out
	}

	// Dropped: the body stays while one copy still needs it.
	_, ids, _ := sharedFanout(t, db, users)
	if _, err := db.DropQueue(ctx, rows(ids[0])[0].ID); err != nil {
		t.Fatal(err)
	}
	if n := bodies(); n != 1 {
		t.Fatalf("%d shared bodies after one of two copies was dropped, want 1", n)
	}
	if raw, err := db.QueuedRaw(ctx, ids[1]); err != nil || !bytes.Contains(raw, []byte("-----END PGP MESSAGE-----")) {
		t.Fatalf("the copy left cannot be read: %v", err)
	}
	if _, err := db.DropQueue(ctx, rows(ids[1])[0].ID); err != nil {
		t.Fatal(err)
	}
	if n := bodies(); n != 0 {
		t.Fatalf("%d shared bodies after every copy was dropped, want 0", n)
	}

	// Purged after delivery: the body goes with the last copy purged.
	_, ids, _ = sharedFanout(t, db, users)
	bs, err := db.ClaimQueue(ctx, t0, 10, nil)
	if err != nil || len(bs) != 2 {
		t.Fatalf("claimed %d batches (%v), want 2", len(bs), err)
	}
	var outcomes []QueueOutcome
	for _, b := range bs {
		outcomes = append(outcomes, QueueOutcome{ID: b.Rcpts[0].ID, State: QueueSent, Reply: "250 ok"})
	}
	if err := db.RecordQueue(ctx, t0, outcomes); err != nil {
		t.Fatal(err)
	}
	p, err := db.Purge(ctx, time.Time{}, t0.Add(time.Hour), t0.Add(time.Hour), false)
	if err != nil || p.QueueBodies != 2 {
		t.Fatalf("purged %+v (%v), want 2 bodies", p, err)
	}
	if n := bodies(); n != 0 {
		t.Fatalf("%d shared bodies after every copy was purged, want 0", n)
	}
	for _, id := range ids {
		if raw, err := db.QueuedRaw(ctx, id); err != nil || len(raw) != 0 {
			t.Fatalf("purged copy %d reads as %d bytes (%v)", id, len(raw), err)
		}
	}

	// Refusals, and nothing left behind by them.
	err = db.Write(ctx, func(tx *sql.Tx) error {
		_, err := AddSharedBodyTx(ctx, tx, []byte("-----BEGIN PGP MESSAGE-----\r\n"))
		return err
	})
	if err == nil {
		t.Fatal("a body that is not a fan-out's shared part was stored")
	}
	f, _, _ := sharedFanout(t, db, users[:1])
	err = db.Write(ctx, func(tx *sql.Tx) error {
		body, err := AddSharedBodyTx(ctx, tx, f.Shared())
		if err != nil {
			return err
		}
		_, err = EnqueueTx(ctx, tx, &OutMessage{Rcpts: []string{"alice@example.net"}, Raw: f.Head(0), Body: body, Origin: OriginNotice})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "relayed") {
		t.Fatalf("a notice with a shared body was queued: %v", err)
	}
	if n := bodies(); n != 1 {
		t.Fatalf("%d shared bodies after a refused enqueue, want the 1 queued before", n)
	}
	if _, err := db.QueuedRaw(ctx, 1<<40); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown message: %v", err)
	}
}

func countBodies(t *testing.T, db *DB) int {
	t.Helper()
	var n int
	err := db.Read(context.Background(), func(tx *sql.Tx) error {
		return tx.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM shared_body`).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A post's archive copy shares the body of its members' copies: read
// back, it is whole (the list key opens it), its members' copies too, and
// the body stays while the post needs it after every queued copy went.
func TestSharedBodyArchive(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	users := []*gpgtest.User{gpgtest.New(t, "Alice", "alice@example.net", "never")}
	f, ids, list := sharedFanout(t, db, users)
	var post Post
	err := db.Write(ctx, func(tx *sql.Tx) error {
		var body int64
		if err := tx.QueryRowContext(ctx, `SELECT body_id FROM queue_msg WHERE id = ?`, ids[0]).Scan(&body); err != nil {
			return err
		}
		l := &List{Name: "2026-001", Kind: ListIncident}
		if err := CreateListTx(ctx, tx, l); err != nil {
			return err
		}
		m := &Member{ListID: l.ID, Email: "alice@example.net", Role: "downstream"}
		if err := AddMemberTx(ctx, tx, m); err != nil {
			return err
		}
		post = Post{ListID: l.ID, MessageID: "<post-1@example.org>", Status: "distributed", ReceivedAt: t0,
			Archive: f.Head(len(users)), ArchiveBody: &SharedBody{id: body, layout: f.Layout()}}
		if err := AddPostTx(ctx, tx, &post); err != nil {
			return err
		}
		return AddPostCopyTx(ctx, tx, post.ID, m.ID, ids[0])
	})
	if err != nil {
		t.Fatal(err)
	}
	want := f.AppendCopy(nil, len(users))
	var got *Post
	if err := db.Read(ctx, func(tx *sql.Tx) (err error) { got, err = PostTx(ctx, tx, post.ID); return err }); err != nil {
		t.Fatal(err)
	}
	ps, err := db.Posts(ctx, post.ListID)
	if err != nil || len(ps) != 1 {
		t.Fatalf("posts: %d, %v", len(ps), err)
	}
	if !bytes.Equal(got.Archive, want) || !bytes.Equal(ps[0].Archive, want) {
		t.Fatal("the archive copy read back differs from the fan-out's")
	}
	if o, err := crypto.Open(got.Archive, []*crypto.Key{list}, []*crypto.Key{list}, time.Now(), crypto.Limits{}); err != nil || o.Signature != crypto.Good {
		t.Fatalf("the list key cannot open the archive: %v", err)
	}
	copies, err := db.PostCopies(ctx, post.ID)
	if err != nil || len(copies) != 1 {
		t.Fatalf("copies: %d, %v", len(copies), err)
	}
	for _, c := range copies {
		if !bytes.Equal(c, f.AppendCopy(nil, 0)) {
			t.Fatal("the member's copy read back differs from the fan-out's")
		}
	}

	// Every queued copy gone, the archive keeps the body; the post gone
	// (its list deleted), the body goes.
	if err := db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM post_copy`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM queue_msg`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := countBodies(t, db); n != 1 {
		t.Fatalf("%d shared bodies once the queue is empty, want the archive's 1", n)
	}
	if err := db.Read(ctx, func(tx *sql.Tx) (err error) { got, err = PostTx(ctx, tx, post.ID); return err }); err != nil || !bytes.Equal(got.Archive, want) {
		t.Fatalf("the archive after the queue emptied: %v", err)
	}
	if err := db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM list`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := countBodies(t, db); n != 0 {
		t.Fatalf("%d shared bodies once the post is gone, want 0", n)
	}
}

// A claim bounded in bytes counts the shared body its copies are made
// from, once for all the copies that share it.
func TestClaimQueueBytesSharedBody(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	users := []*gpgtest.User{
		gpgtest.New(t, "Alice", "alice@example.net", "never"),
		gpgtest.New(t, "Bob", "bob@example.com", "never"),
		gpgtest.New(t, "Carol", "carol@example.org", "never"),
	}
	f, _, _ := sharedFanout(t, db, users)
	copySize, bodySize := int64(len(f.AppendCopy(nil, 0))), int64(len(f.Shared()))
	claim := func(max int64) int {
		t.Helper()
		bs, err := db.ClaimQueueBytes(ctx, t0, 100, max, nil)
		if err != nil {
			t.Fatal(err)
		}
		var outcomes []QueueOutcome
		for _, b := range bs {
			outcomes = append(outcomes, QueueOutcome{ID: b.Rcpts[0].ID, State: QueueQueued})
		}
		if err := db.RecordQueue(ctx, t0, outcomes); err != nil {
			t.Fatal(err)
		}
		return len(bs)
	}
	for _, c := range []struct {
		max  int64
		want int
	}{
		{copySize + bodySize - 1, 1},
		{copySize + bodySize, 1},
		{2*copySize + bodySize - 1, 1},
		{2*copySize + bodySize, 2},
		{3*copySize + bodySize, 3},
	} {
		if got := claim(c.max); got != c.want {
			t.Errorf("claim within %d bytes (copies of %d, body of %d): %d copies, want %d", c.max, copySize, bodySize, got, c.want)
		}
	}
}
