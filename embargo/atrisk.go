package embargo

import (
	"strings"

	"github.com/cvd-project/cvd/store"
)

// AtRisk tells every member and downstream at once that the public date
// may move or the issue may go public early, before that is decided.
func (p *Op) AtRisk(reason string) error {
	o := p.o
	if err := o.editable("at-risk"); err != nil {
		return err
	}
	reason = strings.TrimSpace(reason)
	if reason == "" || strings.ContainsAny(reason, "\r\n") {
		return refuse("say why on one line, e.g. at-risk %s --reason \"the fix was pushed to a public branch\"", o.in.ID)
	}
	if err := checkText("reason", reason, false); err != nil {
		return err
	}
	switch o.in.State {
	case store.IncidentPublished, store.IncidentClosed, store.IncidentRejected, store.IncidentDuplicate:
		return refuse("incident %s is %s: there is no date at risk", o.in.ID, o.in.State)
	}
	r, err := render("at-risk", map[string]any{"ID": o.in.ID, "Prefix": o.d.Policy.SubjectPrefix, "Date": utc(o.in.EmbargoAt),
		"Reason": reason, "ListAddress": o.d.ListAddress(o.in.ID)})
	if err != nil {
		return err
	}
	sent, missed, err := o.sealToMembers("at-risk", r, nil)
	if err != nil {
		return err
	}
	if err := o.event("at-risk", "the public date %s is at risk: %s; told %d members", utc(o.in.EmbargoAt), reason, len(sent)); err != nil {
		return err
	}
	o.note("%s: %d members and downstreams told the date %s is at risk", o.in.ID, len(sent), utc(o.in.EmbargoAt))
	if len(missed) > 0 {
		o.note("not told (no usable key): %s", strings.Join(missed, ", "))
	}
	return o.save()
}
