package store

import (
	"context"
	"database/sql"
	"fmt"
	"io"

	"github.com/cvd-project/cvd/crypto"
)

// SharedBody is a body stored once for several messages: the part a list
// post's copies share (crypto.Fanout's Shared), queued for each member
// and kept as the post's archive. Each message keeps only its own part
// (the Fanout's Head for its recipient) and is made whole by the store
// whenever it is read, so readers see complete messages as before.
type SharedBody struct {
	id     int64
	layout crypto.SharedLayout
}

// sharedPartSize is the largest piece of a shared body stored in one row:
// SQLite copies a value it writes or reads whole, twice, so a large body
// stored in one row would cost several times its size in memory.
const sharedPartSize = 1 << 20

// AddSharedBodyTx stores shared (a Fanout's Shared) inside tx for the
// messages queued after it with OutMessage.Body and the post added with
// Post.ArchiveBody.
func AddSharedBodyTx(ctx context.Context, tx *sql.Tx, shared []byte) (*SharedBody, error) {
	layout, err := crypto.ParseSharedLayout(shared)
	if err != nil {
		return nil, fmt.Errorf("store shared body: %w", err)
	}
	return addSharedBodyTx(ctx, tx, layout, int64(len(shared)), func(w io.Writer) error {
		_, err := w.Write(shared)
		return err
	})
}

// AddFanoutBodyTx is AddSharedBodyTx for f's shared part, read from its
// file when f spilled it there: it is never whole in memory then.
func AddFanoutBodyTx(ctx context.Context, tx *sql.Tx, f *crypto.Fanout) (*SharedBody, error) {
	return addSharedBodyTx(ctx, tx, f.Layout(), f.SharedSize(), f.WriteShared)
}

func addSharedBodyTx(ctx context.Context, tx *sql.Tx, layout crypto.SharedLayout, size int64, write func(io.Writer) error) (*SharedBody, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO shared_body (size) VALUES (?)`, size)
	if err != nil {
		return nil, fmt.Errorf("store shared body: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, fmt.Errorf("store shared body: %w", err)
	}
	w := &partWriter{ctx: ctx, tx: tx, id: id, size: size}
	if err := write(w); err == nil {
		err = w.flush()
	}
	if err != nil {
		return nil, fmt.Errorf("store shared body: %w", err)
	}
	if w.n != size {
		return nil, fmt.Errorf("store shared body: %d of its %d bytes written", w.n, size)
	}
	return &SharedBody{id: id, layout: layout}, nil
}

// partWriter stores what is written to it, size bytes in all, as parts
// of body id of sharedPartSize bytes (the last one shorter). A write of a
// whole part, or of all that is left, is stored as it is, not copied.
type partWriter struct {
	ctx  context.Context
	tx   *sql.Tx
	id   int64
	size int64
	buf  []byte
	n    int64
}

func (w *partWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		part := int(min(sharedPartSize, w.size-w.n))
		if len(w.buf) == 0 && part > 0 && len(p) >= part {
			if err := w.insert(p[:part]); err != nil {
				return n - len(p), err
			}
			p = p[part:]
			continue
		}
		if w.buf == nil {
			w.buf = make([]byte, 0, max(part, 1))
		}
		k := min(len(p), cap(w.buf)-len(w.buf))
		if k == 0 {
			return n - len(p), fmt.Errorf("more than the %d bytes announced", w.size)
		}
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

func (w *partWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.insert(w.buf)
	w.buf = w.buf[:0]
	return err
}

func (w *partWriter) insert(part []byte) error {
	if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO shared_body_part (body_id, data) VALUES (?, ?)`, w.id, part); err != nil {
		return err
	}
	w.n += int64(len(part))
	return nil
}

// size is the length of the whole message whose own part is own bytes.
func (b *SharedBody) size(own int) (int, error) {
	return int(b.layout.CopySize(own)), nil
}

// wholeReader makes stored messages whole within one read: a message
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
		data, err := readSharedBody(ctx, r.tx, body.Int64)
		if err != nil {
			return nil, fmt.Errorf("shared body %d: %w", body.Int64, err)
		}
		r.id, r.data = body.Int64, data
	}
	out, err := crypto.AppendSharedCopy(nil, r.data, raw)
	if err != nil {
		return nil, fmt.Errorf("shared body %d: %w", body.Int64, err)
	}
	return out, nil
}

// read returns the stored message id whole: its own row's raw (of size
// bytes) read from pieces when it was stored in them, then, when it has a
// shared body, made whole around it.
func (r *wholeReader) read(ctx context.Context, pieces pieceTable, id int64, raw []byte, size int64, body sql.NullInt64) ([]byte, error) {
	if !body.Valid {
		var err error
		if raw, err = pieces.fillTx(ctx, r.tx, id, raw, size); err != nil {
			return nil, err
		}
	}
	return r.whole(ctx, raw, body)
}

// close lets the body go.
func (r *wholeReader) close() { r.data = nil }

// readSharedBody reads body id's parts into one buffer of its size.
func readSharedBody(ctx context.Context, tx *sql.Tx, id int64) ([]byte, error) {
	var size int
	if err := tx.QueryRowContext(ctx, `SELECT size FROM shared_body WHERE id = ?`, id).Scan(&size); err != nil {
		if err == sql.ErrNoRows {
			return nil, ErrNotFound
		}
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT data FROM shared_body_part WHERE body_id = ? ORDER BY id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	data := make([]byte, 0, size)
	for rows.Next() {
		var part sql.RawBytes
		if err := rows.Scan(&part); err != nil {
			return nil, err
		}
		data = append(data, part...)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(data) != size {
		return nil, fmt.Errorf("%d of its %d bytes stored", len(data), size)
	}
	return data, nil
}
