package embargo

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/store"
)

// RecordReplyAcks counts, at once, the posts that downstreams made to
// incident list id since they were notified as their acknowledgement (the
// scheduler does the same on its passes). A list that is not an incident
// with downstreams is left alone.
func (d *Desk) RecordReplyAcks(ctx context.Context, id string) error {
	if !lists.IncidentName(id) {
		return nil
	}
	err := d.DB.Write(ctx, func(tx *sql.Tx) error {
		_, err := replyAcksTx(ctx, tx, id, d.now())
		return err
	})
	if err != nil {
		return fmt.Errorf("acknowledgements by reply on %s: %w", id, err)
	}
	return nil
}

// replyAcksTx marks the silent downstreams of id that posted to its list
// as acknowledged, with a timeline event each, and returns how many.
func replyAcksTx(ctx context.Context, tx *sql.Tx, id string, now time.Time) (int, error) {
	acked, err := store.AckDownstreamsByReplyTx(ctx, tx, id)
	if err != nil {
		return 0, err
	}
	for _, e := range acked {
		if err := store.AddIncidentEventTx(ctx, tx, &store.IncidentEvent{Incident: id, At: now, Actor: e, Kind: "ack",
			Detail: "pre-notification acknowledged by a reply"}); err != nil {
			return 0, err
		}
	}
	return len(acked), nil
}

// plural is "1 subscriber", "2 subscribers".
func plural(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %ss", n, one)
}
