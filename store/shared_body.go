package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/cvd-project/cvd/crypto"
)

// QueueBody is a body stored once for several queued messages: the part
// a list post's copies share (crypto.Fanout's Shared). Each message
// keeps only its own part (the Fanout's Head for its recipient) and is
// made whole by the store whenever it is read, so readers see complete
// messages as before.
type QueueBody struct {
	id   int64
	data []byte
}

// AddQueueBodyTx stores shared inside tx for the messages queued after it
// with OutMessage.Body. shared is kept, not copied: it must not change
// until tx ends.
func AddQueueBodyTx(ctx context.Context, tx *sql.Tx, shared []byte) (*QueueBody, error) {
	if _, err := crypto.SharedCopySize(shared, 0); err != nil {
		return nil, fmt.Errorf("store shared body: %w", err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO queue_body (data) VALUES (?)`, shared)
	if err != nil {
		return nil, fmt.Errorf("store shared body: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, fmt.Errorf("store shared body: %w", err)
	}
	return &QueueBody{id: id, data: shared}, nil
}

// size is the length of the whole message whose own part is own bytes.
func (b *QueueBody) size(own int) (int, error) {
	return crypto.SharedCopySize(b.data, own)
}

// wholeReader makes queued messages whole within one read: a message
// with a shared body gets it assembled around its own part. It keeps the
// last body it read, as a claim or a listing meets the copies of one
// post one after another.
type wholeReader struct {
	tx   *sql.Tx
	id   int64
	data []byte
}

// whole returns the message whose own part is raw and whose shared body
// is body (none when not valid).
func (r *wholeReader) whole(ctx context.Context, raw []byte, body sql.NullInt64) ([]byte, error) {
	if !body.Valid {
		return raw, nil
	}
	if r.data == nil || r.id != body.Int64 {
		r.data = nil
		err := r.tx.QueryRowContext(ctx, `SELECT data FROM queue_body WHERE id = ?`, body.Int64).Scan(&r.data)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("shared body %d: %w", body.Int64, ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("shared body %d: %w", body.Int64, err)
		}
		r.id = body.Int64
	}
	out, err := crypto.AppendSharedCopy(nil, r.data, raw)
	if err != nil {
		return nil, fmt.Errorf("shared body %d: %w", body.Int64, err)
	}
	return out, nil
}
