package embargo

import (
	"errors"
	"strings"

	"github.com/cvd-project/cvd/store"
)

// setReporter makes the incident's reporter anonymous toward the
// incident's downstreams and observers ("anonymous") or not ("named"):
// their address, name and key fingerprint are kept out of the copies of
// the reporter's posts, the backlog and x-list-members those members get.
// Public outputs never carry the reporter unless the team records a
// credit.
func (p *Op) setReporter(value string) error {
	o := p.o
	v := strings.ToLower(value)
	if v != "anonymous" && v != "named" {
		return refuse("reporter: use anonymous (kept from downstreams and observers) or named")
	}
	if o.in.Reporter == "" {
		return refuse("incident %s has no reporter", o.in.ID)
	}
	l, err := store.ListByNameTx(o.ctx, o.tx, o.in.ID)
	if err != nil {
		return err
	}
	err = store.SetMemberAnonymousTx(o.ctx, o.tx, l.ID, o.in.Reporter, v == "anonymous")
	if errors.Is(err, store.ErrNotFound) {
		return refuse("the reporter is not a member of %s", o.in.ID)
	}
	if err != nil {
		return err
	}
	if err := o.event("reporter", "reporter %s toward downstreams and observers", v); err != nil {
		return err
	}
	if v == "anonymous" {
		o.note("%s: the reporter is anonymous toward downstreams and observers (copies, backlog, member list)", o.in.ID)
	} else {
		o.note("%s: the reporter is named toward downstreams and observers", o.in.ID)
	}
	return nil
}
