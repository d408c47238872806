package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// LastQueuedTx returns when the newest outbound message of kind was
// queued (zero: none is in the queue).
func LastQueuedTx(ctx context.Context, tx *sql.Tx, kind string) (time.Time, error) {
	var ms int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(created_at), 0) FROM queue_msg WHERE kind = ?`, kind).Scan(&ms); err != nil {
		return time.Time{}, fmt.Errorf("last %s message: %w", kind, err)
	}
	if ms == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(ms).UTC(), nil
}
