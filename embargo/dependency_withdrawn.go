package embargo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/cvd-project/cvd/deps"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/store"
)

// RecordWithdrawn marks, on each dependency incident whose upstream
// advisory is among the withdrawn ones, that it was withdrawn, and tells
// the incident's coordinators by a sealed notice, once. Advisories that
// opened no incident are ignored.
func (d *Desk) RecordWithdrawn(ctx context.Context, advs []*deps.Advisory) ([]DependencyOutcome, error) {
	var out []DependencyOutcome
	for _, a := range advs {
		if !a.IsWithdrawn() {
			continue
		}
		told := ""
		err := d.DB.Write(ctx, func(tx *sql.Tx) error {
			told = ""
			id, err := store.DependencyIncidentTx(ctx, tx, a.ID)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			o, err := d.beginOp(ctx, tx, id, System)
			if err != nil {
				return err
			}
			f := o.in.Facts.Dependency
			if f == nil || !f.Withdrawn.IsZero() {
				return nil
			}
			f.Withdrawn = a.Withdrawn.UTC()
			if err := o.event("dependency", "advisory %s was withdrawn upstream on %s", a.ID, utc(f.Withdrawn)); err != nil {
				return err
			}
			r, err := render("dependency-withdrawn", map[string]any{"ID": id, "UpstreamID": a.ID, "Withdrawn": utc(f.Withdrawn),
				"URL": a.URL(), "State": o.in.State, "Decided": strings.ReplaceAll(f.Decision, "_", " "), "ListAddress": d.ListAddress(id)})
			if err != nil {
				return err
			}
			if _, _, err := o.sealToMembers("dependency", r, func(m recipient) bool { return m.Role == lists.RoleCoordinator }); err != nil {
				return err
			}
			told = id
			return o.save()
		})
		if err != nil {
			return out, fmt.Errorf("withdrawn dependency advisory %s: %w", a.ID, err)
		}
		if told != "" {
			d.log().Info("dependency advisory withdrawn: coordinators told", "incident", told, "advisory", a.ID)
			out = append(out, DependencyOutcome{Advisory: a.ID, Incident: told})
		}
	}
	return out, nil
}
