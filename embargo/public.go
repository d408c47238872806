package embargo

import (
	"context"
	"database/sql"
	"errors"
	"sort"

	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/publish"
	"github.com/cvd-project/cvd/store"
)

// PublicMessages returns the incident's public messages, oldest first:
// the signed announcement as archived on the announce list (without any
// subscriber's unsubscribe link) and the signed copies sent to the
// external lists. An incident not yet released has none, and a refusal
// says so.
func (d *Desk) PublicMessages(ctx context.Context, id string) ([]publish.MboxMessage, error) {
	var out []publish.MboxMessage
	err := d.DB.Read(ctx, func(tx *sql.Tx) error {
		in, err := d.load(ctx, tx, id)
		if err != nil {
			return err
		}
		if in.PublishedAt.IsZero() {
			return refuse("incident %s is not published: it has no public messages yet", in.ID)
		}
		from := d.IntakeAddress()
		l, err := store.ListByNameTx(ctx, tx, lists.AnnounceList)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		default:
			posts, err := store.PostsTx(ctx, tx, l.ID)
			if err != nil {
				return err
			}
			// The release posts the announcement in its own transaction,
			// at the publication time.
			for _, p := range posts {
				if p.ReceivedAt.Equal(in.PublishedAt) && p.Sender == from && len(p.Archive) > 0 {
					out = append(out, publish.MboxMessage{From: from, Date: p.ReceivedAt, Raw: p.Archive})
				}
			}
		}
		qs, err := store.QueuedMessagesTx(ctx, tx, "announce", in.ID)
		if err != nil {
			return err
		}
		for _, q := range qs {
			out = append(out, publish.MboxMessage{From: from, Date: q.CreatedAt, Raw: q.Raw})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Date.Before(out[j].Date) })
	return out, nil
}
