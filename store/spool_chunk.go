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
	var inline []byte
	if size <= SpoolPiece {
		inline = make([]byte, 0, size)
		for _, p := range pieces {
			inline = append(inline, p...)
		}
	} else {
		inline = []byte{}
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
			if err := insertPiecesTx(ctx, tx, id, pieces); err != nil {
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

// insertPiecesTx stores pieces as rows of at most SpoolPiece bytes.
func insertPiecesTx(ctx context.Context, tx *sql.Tx, id int64, pieces [][]byte) error {
	seq := 0
	for _, p := range pieces {
		for len(p) > 0 {
			n := min(len(p), SpoolPiece)
			if _, err := tx.ExecContext(ctx, `INSERT INTO spool_chunk (spool_id, seq, data) VALUES (?, ?, ?)`, id, seq, p[:n]); err != nil {
				return fmt.Errorf("store piece %d: %w", seq, err)
			}
			p = p[n:]
			seq++
		}
	}
	return nil
}

// readPiecesTx reads the pieces of spool row id, of size bytes in all,
// into one buffer of that size. A row emptied by retention has none.
func readPiecesTx(ctx context.Context, tx *sql.Tx, id, size int64) ([]byte, error) {
	rows, err := tx.QueryContext(ctx, `SELECT data FROM spool_chunk WHERE spool_id = ? ORDER BY seq`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var raw []byte
	for rows.Next() {
		var b sql.RawBytes
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		if raw == nil {
			raw = make([]byte, 0, size)
		}
		if int64(len(raw)+len(b)) > size {
			return nil, fmt.Errorf("pieces longer than the message's %d bytes", size)
		}
		raw = append(raw, b...)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if raw != nil && int64(len(raw)) != size {
		return nil, fmt.Errorf("pieces of %d bytes, the message has %d", len(raw), size)
	}
	return raw, nil
}
