package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// QueuedMessage is a message as it was queued (it is kept after delivery
// until an operator drops it).
type QueuedMessage struct {
	ID        int64
	CreatedAt time.Time
	Raw       []byte
}

// QueuedMessagesTx returns the messages queued with kind and ref (e.g.
// "announce" and an incident ID), oldest first.
func QueuedMessagesTx(ctx context.Context, tx *sql.Tx, kind, ref string) ([]QueuedMessage, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, created_at, raw, size, body_id FROM queue_msg WHERE kind = ? AND ref = ? ORDER BY id`, kind, ref)
	if err != nil {
		return nil, fmt.Errorf("queued %s messages of %s: %w", kind, ref, err)
	}
	defer rows.Close()
	var out []QueuedMessage
	wr := &wholeReader{tx: tx}
	defer wr.close()
	for rows.Next() {
		var m QueuedMessage
		var at, size int64
		var body sql.NullInt64
		if err := rows.Scan(&m.ID, &at, &m.Raw, &size, &body); err != nil {
			return nil, fmt.Errorf("queued %s messages of %s: %w", kind, ref, err)
		}
		if m.Raw, err = wr.read(ctx, queuePieces, m.ID, m.Raw, size, body); err != nil {
			return nil, fmt.Errorf("queued %s messages of %s: %w", kind, ref, err)
		}
		m.CreatedAt = time.UnixMilli(at).UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}
