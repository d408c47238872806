package embargo

import (
	"strings"

	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/store"
)

// AddDownstream adds a downstream to the incident's list. When the
// incident's downstreams were pre-notified and its public date is ahead,
// the new one is told as by a late notify: the pre-notification with the
// incident's files, then the list's posts since the first notice. It is
// refused, and nobody added, when that cannot be sent (no usable key).
func (p *Op) AddDownstream(nm lists.NewMember) (*store.Member, error) {
	o := p.o
	nm.Role = lists.RoleDownstream
	late := o.in.State == store.IncidentPrenotified && !o.in.FirstNoticeAt.IsZero() && o.in.EmbargoAt.After(o.now)
	if late {
		if err := o.editable("adding a downstream"); err != nil {
			return nil, err
		}
	}
	m, err := o.d.Lists.AddMemberTx(o.ctx, o.tx, o.in.ID, nm)
	if err != nil || !late {
		return m, err
	}
	ds, err := store.DownstreamsTx(o.ctx, o.tx, o.in.ID)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, x := range ds {
		known[x.Email] = true
	}
	if known[m.Email] {
		return m, nil
	}
	if o.in.EmbargoAt.Sub(o.now) < o.d.Policy.MinNotice {
		o.note("warning: %s gets less than %s of notice", m.Email, human(o.d.Policy.MinNotice))
	}
	person := Person{Name: nm.Name, Email: m.Email}
	if err := o.checkHardLimit(o.in.EmbargoAt, []Person{person}); err != nil {
		return nil, err
	}
	keep := map[string]bool{strings.ToLower(m.Email): true}
	if err := o.prenotify([]Person{person}, keep, known, false, nil); err != nil {
		if IsRefusal(err) {
			return nil, refuse("%v; %s was pre-notified, so a downstream added now gets the notice at once: %s was not added (give its key with --key)", err, o.in.ID, m.Email)
		}
		return nil, err
	}
	return m, nil
}
