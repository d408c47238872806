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
		return tx.QueryRowContext(ctx, `SELECT raw FROM queue_msg WHERE id = ?`, msgID).Scan(&raw)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("queued message %d: %w", msgID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("queued message %d: %w", msgID, err)
	}
	return raw, nil
}
