package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/cvd-project/cvd/crypto"
)

// SharedBody is a body stored once for several messages: the part a list
// post's copies share (crypto.Fanout's Shared), queued for each member
// and kept as the post's archive. Each message keeps only its own part
// (the Fanout's Head for its recipient) and is made whole by the store
// whenever it is read, so readers see complete messages as before.
type SharedBody struct {
	id   int64
	data []byte
}

// AddSharedBodyTx stores shared inside tx for the messages queued after it
// with OutMessage.Body and the post added with Post.ArchiveBody. shared is kept, not copied: it must not change
// until tx ends.
func AddSharedBodyTx(ctx context.Context, tx *sql.Tx, shared []byte) (*SharedBody, error) {
	if _, err := crypto.SharedCopySize(shared, 0); err != nil {
		return nil, fmt.Errorf("store shared body: %w", err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO shared_body (data) VALUES (?)`, shared)
	if err != nil {
		return nil, fmt.Errorf("store shared body: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, fmt.Errorf("store shared body: %w", err)
	}
	return &SharedBody{id: id, data: shared}, nil
}

// size is the length of the whole message whose own part is own bytes.
func (b *SharedBody) size(own int) (int, error) {
	return crypto.SharedCopySize(b.data, own)
}

// wholeReader makes stored messages whole within one read: a message
// with a shared body gets it assembled around its own part. It keeps the
// last body it read, as a claim or a listing meets the copies of one
// post one after another, and reads it without a copy of its own (the
// driver's bytes, held until close).
type wholeReader struct {
	tx   *sql.Tx
	id   int64
	rows *sql.Rows
	data sql.RawBytes
}

// whole returns the message whose own part is raw and whose shared body
// is body (none when not valid).
func (r *wholeReader) whole(ctx context.Context, raw []byte, body sql.NullInt64) ([]byte, error) {
	if !body.Valid {
		return raw, nil
	}
	if r.rows == nil || r.id != body.Int64 {
		if err := r.load(ctx, body.Int64); err != nil {
			r.close()
			return nil, fmt.Errorf("shared body %d: %w", body.Int64, err)
		}
	}
	out, err := crypto.AppendSharedCopy(nil, r.data, raw)
	if err != nil {
		return nil, fmt.Errorf("shared body %d: %w", body.Int64, err)
	}
	return out, nil
}

func (r *wholeReader) load(ctx context.Context, id int64) error {
	r.close()
	rows, err := r.tx.QueryContext(ctx, `SELECT data FROM shared_body WHERE id = ?`, id)
	if err != nil {
		return err
	}
	r.rows = rows
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return ErrNotFound
	}
	if err := rows.Scan(&r.data); err != nil {
		return err
	}
	r.id = id
	return nil
}

// close lets the body go; whole reads it again when next needed.
func (r *wholeReader) close() {
	if r.rows != nil {
		r.rows.Close()
	}
	r.rows, r.data = nil, nil
}
