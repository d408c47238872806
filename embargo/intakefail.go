package embargo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/store"
)

// intakeFailed handles a report the intake could not take (no incident
// could be opened, or the report could not be posted): it is sealed as
// received, with the reason, to every team member with a usable key, and
// its spool row is marked failed. A report is never failed silently: when
// nobody could be told, the error is returned (and logged by the router).
func (d *Desk) intakeFailed(ctx context.Context, sm *store.SpooledMessage, rcpt string, rp *report, cause error) error {
	if ctx.Err() != nil {
		return cause
	}
	d.log().Error("report not taken by the intake", "spool", sm.ID, "err", cause)
	r, err := render("intake-failed", map[string]any{"Reason": cause.Error(), "Received": utc(sm.ReceivedAt),
		"From": lists.HeaderName(rp.from.Name) + " <" + rp.reporter + ">", "Size": strconv.Itoa(len(sm.Raw)) + " bytes",
		"ID": strconv.FormatInt(sm.ID, 10)})
	if err != nil {
		return errors.Join(cause, err)
	}
	var sent int
	err = d.DB.Write(ctx, func(tx *sql.Tx) error {
		var err error
		sent, err = d.sealToTeamWithTx(ctx, tx, "intake-failed", "", r.Subject, r.Body, sm.Raw, "spool-"+strconv.FormatInt(sm.ID, 10)+".eml")
		if err != nil || sent == 0 {
			return err
		}
		return store.MarkRcptTx(ctx, tx, sm.ID, rcpt, store.SpoolFailed, "intake failed: sent to the team as received")
	})
	if err != nil {
		return errors.Join(cause, fmt.Errorf("tell the team: %w", err))
	}
	if sent == 0 {
		return errors.Join(cause, errors.New("no team member has a usable key: nobody was told"))
	}
	d.log().Warn("report the intake could not take sent to the team as received", "spool", sm.ID, "team", sent)
	return nil
}
