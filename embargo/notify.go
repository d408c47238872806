package embargo

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/publish"
	"github.com/cvd-project/cvd/store"
)

// Notify sends the pre-notification to the selected downstreams of the
// roster (names or addresses; none selects the whole roster), each copy
// encrypted to that downstream only, with the incident's files (files
// are added to them first). They become members of the incident list,
// and the public date is armed: the incident is released at that date.
// A downstream told after the first notice also gets the list's posts
// since then.
func (p *Op) Notify(selection []string, files ...File) error {
	o := p.o
	if err := o.editable("notify"); err != nil {
		return err
	}
	if o.in.Privacy != Private {
		return refuse("incident %s is %s: the fast path has no pre-notification; publish it when a fix or work-around exists", o.in.ID, o.in.Privacy)
	}
	switch o.in.State {
	case store.IncidentConfirmed, store.IncidentFixing, store.IncidentPrenotified:
	default:
		return refuse("incident %s is %s; confirm it before notifying downstreams", o.in.ID, o.in.State)
	}
	if o.in.EmbargoAt.IsZero() {
		return refuse("incident %s has no public date: set one first (the pre-notification always states it), e.g. embargo %s",
			o.in.ID, o.d.Policy.Propose(o.now).Format("2006-01-02T15:04Z"))
	}
	people, err := o.d.selectRoster(selection)
	if err != nil {
		return err
	}
	if len(people) == 0 && len(o.d.Roster) > 0 {
		return refuse("no downstream selected")
	}
	known := map[string]bool{}
	ds, err := store.DownstreamsTx(o.ctx, o.tx, o.in.ID)
	if err != nil {
		return err
	}
	for _, x := range ds {
		known[x.Email] = true
	}
	if len(selection) == 0 {
		extra, err := o.unnotifiedDownstreams(people, known)
		if err != nil {
			return err
		}
		people = append(people, extra...)
	}
	if err := o.checkHardLimit(o.in.EmbargoAt, people); err != nil {
		return err
	}
	first := o.in.FirstNoticeAt.IsZero()
	if first {
		if _, err := o.d.Policy.check(o.in.EmbargoAt, o.now, o.now, o.in.EmbargoOverride); err != nil {
			return err
		}
	} else if !o.in.EmbargoAt.After(o.now) {
		return refuse("the public date %s has passed", utc(o.in.EmbargoAt))
	}
	if !first && o.in.EmbargoAt.Sub(o.now) < o.d.Policy.MinNotice {
		o.note("warning: these downstreams get less than %s of notice", human(o.d.Policy.MinNotice))
	}
	added, err := o.addFiles(files)
	if err != nil {
		return err
	}
	// Members first: their keys are pinned from the roster when none is.
	var keep = map[string]bool{}
	for _, ps := range people {
		if err := o.d.addPerson(o.ctx, o.tx, o.in.ID, ps, lists.RoleDownstream); err != nil {
			return err
		}
		keep[strings.ToLower(ps.Email)] = true
	}
	if len(people) > 0 {
		if err := o.prenotify(people, keep, known, first, added); err != nil {
			return err
		}
	} else {
		if len(added) > 0 {
			return refuse("the roster is empty: nobody to send %s to", strings.Join(added, ", "))
		}
		if err := o.event("notify", "no downstream in the roster; release armed for %s", utc(o.in.EmbargoAt)); err != nil {
			return err
		}
		o.note("%s: the roster is empty, no downstream notified; the release is armed for %s", o.in.ID, utc(o.in.EmbargoAt))
	}
	if first {
		o.in.FirstNoticeAt = o.now
	}
	if o.in.State == store.IncidentConfirmed {
		if err := o.to(store.IncidentFixing); err != nil {
			return err
		}
	}
	if err := o.to(store.IncidentPrenotified); err != nil {
		return err
	}
	if _, err := o.d.advisory(o.in, publish.Released, o.in.EmbargoAt); err != nil {
		o.note("warning: the announcement is not complete yet: %v; at the public date the release is held until it is (or publish --force)", err)
	}
	return o.save()
}

// prenotify sends the pre-notification with the incident's files to the
// downstream members in keep, records them as notified and, after the
// first notice, sends a new one (not in known) the list's backlog.
func (o *op) prenotify(people []Person, keep, known map[string]bool, first bool, added []string) error {
	stored, err := o.files()
	if err != nil {
		return err
	}
	longest, until, hard, err := o.maxEmbargo(people)
	if err != nil {
		return err
	}
	var names []string
	for _, f := range stored {
		names = append(names, fmt.Sprintf("%s (%s, %d bytes)", f.Name, f.ContentType, f.Size))
	}
	r, err := render("prenotify", map[string]any{"ID": o.in.ID, "Prefix": o.d.Policy.SubjectPrefix, "Date": utc(o.in.EmbargoAt),
		"DateISO": o.in.EmbargoAt.Format("2006-01-02T15:04Z"), "ListAddress": o.d.ListAddress(o.in.ID), "Project": o.d.Project.Name,
		"Title": orDefault(o.in.Facts.Title, "security issue "+o.in.ID), "Facts": o.d.factsText(o.in), "MinNotice": human(o.d.Policy.MinNotice),
		"Announce": strings.Join(o.d.publicLists(), ", "), "MaxEmbargo": human(longest), "MaxUntil": utc(until),
		"FirstNotice": utc(firstOr(o.in.FirstNoticeAt, o.now)), "HardLimit": hard, "Files": names,
		"Fingerprint": o.d.Key.Fingerprint()})
	if err != nil {
		return err
	}
	sent, missed, err := o.sealNotice("prenotify", r.Subject, r.Body, stored, func(m recipient) bool {
		return keep[m.Email] && m.Role == lists.RoleDownstream
	})
	if err != nil {
		return err
	}
	if len(sent) == 0 {
		return refuse("no selected downstream has a usable key (%s): nothing was sent", strings.Join(missed, ", "))
	}
	for _, e := range sent {
		if err := store.AddDownstreamTx(o.ctx, o.tx, &store.Downstream{Incident: o.in.ID, Email: e, Name: nameOf(people, e), NotifiedAt: o.now}); err != nil {
			return err
		}
	}
	if err := o.recordFiles(sent, stored); err != nil {
		return err
	}
	with := ""
	if len(stored) > 0 {
		var fs []string
		for _, f := range stored {
			fs = append(fs, f.Name)
		}
		with = " with " + strings.Join(fs, ", ")
	}
	if err := o.event("notify", "pre-notification for %s sent to %s%s", utc(o.in.EmbargoAt), strings.Join(sent, ", "), with); err != nil {
		return err
	}
	o.note("%s: pre-notification for %s sent to %s%s", o.in.ID, utc(o.in.EmbargoAt), strings.Join(sent, ", "), with)
	if len(added) > 0 {
		o.note("attached: %s", strings.Join(added, ", "))
	}
	if len(missed) > 0 {
		o.note("not notified (no usable key): %s", strings.Join(missed, ", "))
	}
	if !first {
		for _, e := range sent {
			if known[e] {
				continue
			}
			res, err := o.lateDownstream(e)
			if err != nil {
				return err
			}
			o.note("%s joined late: %s", e, res)
		}
	}
	return nil
}

// unnotifiedDownstreams returns the downstream members of the incident's
// list who are neither among people nor already notified: those added
// with 'member add --role downstream' before the notice. A notify of the
// whole roster tells them too.
func (o *op) unnotifiedDownstreams(people []Person, known map[string]bool) ([]Person, error) {
	l, err := store.ListByNameTx(o.ctx, o.tx, o.in.ID)
	if err != nil {
		return nil, err
	}
	ms, err := store.MembersTx(o.ctx, o.tx, l.ID)
	if err != nil {
		return nil, err
	}
	var out []Person
	for _, r := range ms {
		e := strings.ToLower(r.Email)
		if r.State != store.MemberActive || r.Role != lists.RoleDownstream || known[e] || slices.ContainsFunc(people, func(p Person) bool { return strings.EqualFold(p.Email, e) }) {
			continue
		}
		out = append(out, Person{Name: r.Name, Email: r.Email})
	}
	return out, nil
}

// nameOf is the name people give email ("" when none).
func nameOf(people []Person, email string) string {
	for _, p := range people {
		if strings.EqualFold(p.Email, email) {
			return p.Name
		}
	}
	return ""
}

func orDefault(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}

// selectRoster returns the roster entries named by sel (all when empty).
func (d *Desk) selectRoster(sel []string) ([]Person, error) {
	if len(sel) == 0 {
		return d.Roster, nil
	}
	var out []Person
	for _, s := range sel {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if cat, ok := strings.CutPrefix(strings.ToLower(s), "category="); ok {
			ps, err := d.byCategory(cat)
			if err != nil {
				return nil, err
			}
			out = append(out, ps...)
			continue
		}
		found := false
		for _, p := range d.Roster {
			if strings.EqualFold(p.Name, s) || strings.EqualFold(p.Email, s) {
				out = append(out, p)
				found = true
			}
		}
		if !found {
			var names []string
			for _, p := range d.Roster {
				names = append(names, p.Name)
			}
			return nil, refuse("%q is not in the downstream roster (%s)", s, strings.Join(names, ", "))
		}
	}
	return out, nil
}

func (d *Desk) rosterName(email string) string {
	for _, p := range d.Roster {
		if strings.EqualFold(p.Email, email) {
			return p.Name
		}
	}
	return ""
}

// publicLists are where the announcement goes.
func (d *Desk) publicLists() []string {
	var out []string
	if d.Announce != "" {
		out = append(out, d.Announce)
	}
	return append(out, d.External...)
}

// factsText is the incident's facts as a block of text for notices.
func (d *Desk) factsText(in *Incident) string {
	f := in.Facts
	var b strings.Builder
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-12s %s\n", k+":", v)
		}
	}
	line("Incident", in.ID)
	line("Project", d.Project.Name)
	line("Title", f.Title)
	line("CVE", orDefault(f.CVE, "not assigned yet"))
	for _, v := range f.CVSS {
		if c, err := publish.ParseCVSS(v); err == nil {
			line("CVSS", fmt.Sprintf("%s %s (v%s)", c.ScoreString(), c.Severity, c.Version))
			line("Vector", c.Vector)
		}
	}
	line("Type", publish.TypeText(f.ProblemType, f.CWE))
	for _, pk := range f.Packages {
		for _, r := range pk.Ranges {
			line("Affected", fmt.Sprintf("%s from %s", pk.Name, r.Introduced))
			if r.Fixed != "" {
				line("Fixed", fmt.Sprintf("%s %s", pk.Name, r.Fixed))
			}
		}
	}
	if len(f.Backports) > 0 {
		var vs []string
		for v := range f.Backports {
			vs = append(vs, v)
		}
		sort.Strings(vs)
		for _, v := range vs {
			line("Backport", v+": "+f.Backports[v])
		}
	}
	for _, c := range f.Credits {
		line("Credit", c.DisplayName()+" ("+c.Kind().Words()+")")
	}
	line("Upstream", f.UpstreamAdvisory)
	b.WriteString(decisionsText(in))
	if f.Workaround != "" {
		b.WriteString("\nWork-around:\n" + f.Workaround + "\n")
	}
	if f.Description != "" {
		b.WriteString("\nDescription:\n" + f.Description + "\n")
	}
	return b.String()
}

// Ack records an acknowledgement: from a downstream, of the
// pre-notification; from a coordinator, that the team took the report.
func (p *Op) Ack() error {
	o := p.o
	switch o.actor.Role {
	case lists.RoleDownstream:
		ok, err := store.AckDownstreamTx(o.ctx, o.tx, o.in.ID, o.actor.Who, "x-ack", o.now)
		if err != nil {
			return err
		}
		if !ok {
			o.note("%s", o.ackAgain())
			return nil
		}
		o.note("%s: acknowledgement recorded; the public date is %s", o.in.ID, utc(o.in.EmbargoAt))
		return o.event("ack", "pre-notification acknowledged")
	case lists.RoleCoordinator, "":
		if o.in.State != store.IncidentNew {
			o.note("%s is %s already", o.in.ID, o.in.State)
			return nil
		}
		if err := o.take(); err != nil {
			return err
		}
		o.note("%s taken into triage", o.in.ID)
		return o.save()
	}
	return refuse("ack is for downstreams and coordinators")
}

// ackAgain says why a downstream's x-ack changed nothing: acknowledged
// before (when and how), or never notified.
func (o *op) ackAgain() string {
	ds, err := store.DownstreamsTx(o.ctx, o.tx, o.in.ID)
	if err == nil {
		for _, x := range ds {
			if !strings.EqualFold(x.Email, o.actor.Who) || x.AckedAt.IsZero() {
				continue
			}
			how := "an x-ack"
			if x.AckHow == "reply" {
				how = "your post to the list"
			}
			return fmt.Sprintf("%s: already acknowledged, by %s on %s; the public date is %s", o.in.ID, how, utc(x.AckedAt), utc(o.in.EmbargoAt))
		}
	}
	return fmt.Sprintf("%s: nothing to acknowledge: %s has not been sent a pre-notification of this incident", o.in.ID, o.actor.Who)
}
