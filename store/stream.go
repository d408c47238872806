package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cvd-project/cvd/crypto"
)

// messageOpener returns what reads queued message id (size bytes) piece
// by piece: its own pieces, or, with a shared body, the copy made of that
// body and its own part head.
func (db *DB) messageOpener(id int64, head []byte, size int64, body sql.NullInt64, bodySize int64) func(context.Context) (io.ReadCloser, error) {
	return func(ctx context.Context) (io.ReadCloser, error) {
		if !body.Valid {
			return &pieceReader{ctx: ctx, db: db, sel: `SELECT seq, data FROM queue_chunk WHERE msg_id = ? AND seq > ? ORDER BY seq LIMIT 1`,
				owner: id, after: -1, left: size, what: fmt.Sprintf("message %d", id)}, nil
		}
		pr := &pieceReader{ctx: ctx, db: db, sel: `SELECT id, data FROM shared_body_part WHERE body_id = ? AND id > ? ORDER BY id LIMIT 1`,
			owner: body.Int64, after: -1, left: bodySize, what: fmt.Sprintf("shared body %d", body.Int64)}
		r, n, err := crypto.NewSharedCopyReader(pr, bodySize, head)
		if err != nil {
			return nil, fmt.Errorf("read message %d: shared body %d: %w", id, body.Int64, err)
		}
		if n != size {
			return nil, fmt.Errorf("read message %d: %d bytes made, %d stored", id, n, size)
		}
		return io.NopCloser(r), nil
	}
}

// pieceReader reads the rows of one stored message in order, one short
// read transaction a row, so that no transaction lasts while the message
// is sent. It expects left bytes in all: fewer or more is an error.
type pieceReader struct {
	ctx   context.Context
	db    *DB
	sel   string // key and data of the first row of owner after a key
	owner int64
	after int64
	left  int64
	what  string
	buf   []byte
	off   int
	done  bool
}

// errPieces says a stored message's pieces do not add up to its size.
var errPieces = errors.New("stored pieces do not match the message's size")

func (r *pieceReader) Read(p []byte) (int, error) {
	for r.off == len(r.buf) {
		if r.done {
			if r.left != 0 {
				return 0, fmt.Errorf("%s: %w: %d bytes missing", r.what, errPieces, r.left)
			}
			return 0, io.EOF
		}
		if err := r.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

func (r *pieceReader) next() error {
	r.buf, r.off = r.buf[:0], 0
	err := r.db.Read(r.ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(r.ctx, r.sel, r.owner, r.after)
		if err != nil {
			return err
		}
		defer rows.Close()
		if !rows.Next() {
			r.done = true
			return rows.Err()
		}
		var data sql.RawBytes
		if err := rows.Scan(&r.after, &data); err != nil {
			return err
		}
		r.buf = append(r.buf, data...)
		return rows.Close()
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", r.what, err)
	}
	if r.left -= int64(len(r.buf)); r.left < 0 {
		return fmt.Errorf("%s: %w: %d bytes too many", r.what, errPieces, -r.left)
	}
	return nil
}

func (r *pieceReader) Close() error { return nil }

// SpillFile makes an empty, already unlinked file in the database's
// folder, for data too large to hold in memory on its way into the
// database (crypto.NewFanoutSpill): it is gone when closed, or if cvd
// stops.
func (db *DB) SpillFile() (*os.File, error) {
	f, err := os.CreateTemp(filepath.Dir(db.path), ".spill-*")
	if err != nil {
		return nil, fmt.Errorf("spill file: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("spill file: %w", err)
	}
	return f, nil
}
