package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// A large post sealed through a spill file is stored without the file
// left behind; its copies are claimed without being read, read through
// Open byte for byte as QueuedRaw makes them whole, and each opens with
// its member's gpg. A shared body with a part missing is an error when
// read, never a shorter message.
func TestStreamedSharedBody(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	users := []*gpgtest.User{
		gpgtest.New(t, "Alice", "alice@example.net", "never"),
		gpgtest.New(t, "Bob", "bob@example.com", "never"),
	}
	list, keys, outer := listFor(t, users, "<post-big@example.org>")
	data := make([]byte, 3*SpoolPiece)
	rand.Read(data)
	enc := base64.StdEncoding.EncodeToString(data)
	var body strings.Builder
	for len(enc) > 76 {
		body.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	body.WriteString(enc + "\r\n")
	inner := "Subject: core dump\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	spills := 0
	f, err := crypto.NewFanoutSpill(func() (*os.File, error) { spills++; return db.SpillFile() }, []byte(inner), [][]byte{[]byte(body.String())}, outer, list, keys, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if spills != 1 {
		t.Fatalf("%d spill files made, want 1", spills)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(db.Path()), ".spill-*")); len(left) != 0 {
		t.Fatalf("spill file left in the folder: %v", left)
	}
	var ids []int64
	err = db.Write(ctx, func(tx *sql.Tx) error {
		sb, err := AddFanoutBodyTx(ctx, tx, f)
		if err != nil {
			return err
		}
		for i, u := range users {
			id, err := EnqueueTx(ctx, tx, &OutMessage{Rcpts: []string{u.Email}, Raw: f.Head(i), Body: sb, Origin: OriginRelay, Kind: "post", Ref: "2026-001", CreatedAt: t0})
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
	var parts int
	if err := db.Read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM shared_body_part WHERE length(data) <= ?`, sharedPartSize).Scan(&parts)
	}); err != nil || parts < 4 {
		t.Fatalf("stored in %d parts of at most %d bytes (%v)", parts, sharedPartSize, err)
	}

	bs, err := db.ClaimQueue(ctx, t0, 10, nil)
	if err != nil || len(bs) != len(users) {
		t.Fatalf("claimed %d batches, %v", len(bs), err)
	}
	for i, u := range users {
		b := bs[i]
		if b.MessageID != ids[i] || b.Raw != nil || b.Open == nil {
			t.Fatalf("copy for %s claimed whole (%d bytes)", u.Email, len(b.Raw))
		}
		want, err := db.QueuedRaw(ctx, ids[i])
		if err != nil {
			t.Fatal(err)
		}
		r, err := b.Open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, want) || b.Size != int64(len(want)) {
			t.Fatalf("copy for %s read through Open: %d bytes (%v), size %d, want %d", u.Email, len(got), err, b.Size, len(want))
		}
		text, status, err := u.Decrypt(got)
		if err != nil || !gpgtest.HasStatus(status, "GOODSIG") || !strings.Contains(text, body.String()[:4000]) {
			t.Fatalf("%s cannot read their copy: %v\n%s", u.Email, err, status)
		}
	}

	if err := db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM shared_body_part WHERE id = (SELECT MAX(id) FROM shared_body_part)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := readBatch(ctx, bs[0]); err == nil || !errors.Is(err, errPieces) && !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("a shared body missing a part read as %d bytes, %v", len(got), err)
	}
}

// readBatch is a claimed batch's message, read whole through Open when it
// is not in Raw; a reader that gives more than Size bytes is an error.
func readBatch(ctx context.Context, b QueueBatch) ([]byte, error) {
	if b.Raw != nil || b.Open == nil {
		return b.Raw, nil
	}
	r, err := b.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	raw := make([]byte, b.Size)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, fmt.Errorf("read message %d: %w", b.MessageID, err)
	}
	var one [1]byte
	if n, err := r.Read(one[:]); n > 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			err = errors.New("more bytes")
		}
		return nil, fmt.Errorf("read message %d: longer than its %d bytes: %w", b.MessageID, b.Size, err)
	}
	return raw, nil
}
