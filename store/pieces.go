package store

import (
	"context"
	"database/sql"
	"fmt"
)

// SpoolPiece is the most of a message stored in one row: a message up to
// this size is stored whole in its spool row, a larger one in pieces of
// this size, so that neither SQLite nor its driver ever copies it whole.
const SpoolPiece = 1 << 20

// SpoolPieces stores a received message, given as consecutive pieces of
// any size, durably and returns its spool ID, as Spool does.
func (db *DB) SpoolPieces(ctx context.Context, env Envelope, pieces [][]byte) (int64, error) {
	var size int
	for _, p := range pieces {
		size += len(p)
	}
	inline := []byte{}
	switch {
	case size > SpoolPiece:
	case len(pieces) == 1 && pieces[0] != nil:
		inline = pieces[0]
	default:
		inline = make([]byte, 0, size)
		for _, p := range pieces {
			inline = append(inline, p...)
		}
	}
	var id int64
	err := db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`INSERT INTO spool (received_at, remote_addr, helo, mail_from, tls, size, raw, auth) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			env.ReceivedAt.UnixMilli(), env.RemoteAddr, env.Helo, env.MailFrom, env.TLS, size, inline, env.Auth)
		if err != nil {
			return err
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		if size > SpoolPiece {
			if err := spoolPieces.insertTx(ctx, tx, id, pieces); err != nil {
				return err
			}
		}
		for _, rcpt := range env.Rcpts {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO spool_rcpt (spool_id, rcpt) VALUES (?, ?)`, id, rcpt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("spool message from %q: %w", env.MailFrom, err)
	}
	return id, nil
}

// pieceTable is a table that holds messages larger than SpoolPiece in
// pieces (their row's raw is then empty).
type pieceTable struct{ insert, sel string }

var (
	spoolPieces = pieceTable{
		insert: `INSERT INTO spool_chunk (spool_id, seq, data) VALUES (?, ?, ?)`,
		sel:    `SELECT data FROM spool_chunk WHERE spool_id = ? ORDER BY seq`,
	}
	postPieces = pieceTable{
		insert: `INSERT INTO post_chunk (post_id, seq, data) VALUES (?, ?, ?)`,
		sel:    `SELECT data FROM post_chunk WHERE post_id = ? ORDER BY seq`,
	}
	queuePieces = pieceTable{
		insert: `INSERT INTO queue_chunk (msg_id, seq, data) VALUES (?, ?, ?)`,
		sel:    `SELECT data FROM queue_chunk WHERE msg_id = ? ORDER BY seq`,
	}
)

// insertTx stores pieces of message id as rows of at most SpoolPiece
// bytes.
func (t pieceTable) insertTx(ctx context.Context, tx *sql.Tx, id int64, pieces [][]byte) error {
	seq := 0
	for _, p := range pieces {
		for len(p) > 0 {
			n := min(len(p), SpoolPiece)
			if _, err := tx.ExecContext(ctx, t.insert, id, seq, p[:n]); err != nil {
				return fmt.Errorf("store piece %d: %w", seq, err)
			}
			p = p[n:]
			seq++
		}
	}
	return nil
}

// fillTx returns the message id whose row holds raw and whose size is
// size: raw itself, or, when it is stored in pieces, the pieces read
// into one buffer of that size. A message emptied by retention has no
// pieces and stays empty.
func (t pieceTable) fillTx(ctx context.Context, tx *sql.Tx, id int64, raw []byte, size int64) ([]byte, error) {
	if len(raw) > 0 || size <= SpoolPiece {
		return raw, nil
	}
	rows, err := tx.QueryContext(ctx, t.sel, id)
	if err != nil {
		return nil, fmt.Errorf("read pieces of message %d: %w", id, err)
	}
	defer rows.Close()
	raw = nil
	for rows.Next() {
		var b sql.RawBytes
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("read pieces of message %d: %w", id, err)
		}
		if raw == nil {
			raw = make([]byte, 0, size)
		}
		if int64(len(raw)+len(b)) > size {
			return nil, fmt.Errorf("message %d: pieces longer than its %d bytes", id, size)
		}
		raw = append(raw, b...)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read pieces of message %d: %w", id, err)
	}
	if raw != nil && int64(len(raw)) != size {
		return nil, fmt.Errorf("message %d: pieces of %d bytes, it has %d", id, len(raw), size)
	}
	if raw == nil {
		raw = []byte{}
	}
	return raw, nil
}
