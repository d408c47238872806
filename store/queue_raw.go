package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// QueuedRaw returns the queued message msgID exactly as it will be sent.
func (db *DB) QueuedRaw(ctx context.Context, msgID int64) ([]byte, error) {
	var raw []byte
	err := db.Read(ctx, func(tx *sql.Tx) error {
		var size int64
		var body sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT raw, size, body_id FROM queue_msg WHERE id = ?`, msgID).Scan(&raw, &size, &body); err != nil {
			return err
		}
		wr := &wholeReader{tx: tx}
		defer wr.close()
		var err error
		raw, err = wr.read(ctx, queuePieces, msgID, raw, size, body)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("queued message %d: %w", msgID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("queued message %d: %w", msgID, err)
	}
	return raw, nil
}
