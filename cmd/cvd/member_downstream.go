package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"

	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/store"
)

// addDownstream adds a downstream to an incident's list through the
// desk, which tells it as a late notify would when the incident's
// downstreams were pre-notified. done is false when list is no incident.
func addDownstream(cfgPath, list string, nm lists.NewMember, stdout io.Writer) (done bool, err error) {
	err = withDesk(cfgPath, func(ctx context.Context, d *embargo.Desk) error {
		err := d.DB.Read(ctx, func(tx *sql.Tx) error {
			_, err := store.IncidentTx(ctx, tx, list)
			return err
		})
		if errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		done = true
		var m *store.Member
		notes, err := d.Do(ctx, list, embargo.CLI(operator()), func(p *embargo.Op) (err error) {
			m, err = p.AddDownstream(nm)
			return err
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added %s to %s as %s\n", m.Email, list, m.Role)
		if notes != "" {
			fmt.Fprintln(stdout, notes)
		}
		if nm.Key == nil {
			fmt.Fprintf(stdout, "note: no key given; %s gets only notices until a key is pinned\n", m.Email)
		}
		return nil
	})
	return done, err
}
