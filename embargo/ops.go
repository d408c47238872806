package embargo

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/publish"
	"github.com/cvd-project/cvd/store"
)

// Op is one change to an incident in progress, inside a transaction. Its
// methods check the rules, change the incident, record the timeline and
// queue the notices; the CLI and the email keywords call the same ones.
type Op struct{ o *op }

// Incident returns the incident as changed so far.
func (p *Op) Incident() *Incident { return p.o.in }

// transitions is the state machine.
var transitions = map[string][]string{
	store.IncidentNew:         {store.IncidentTriage, store.IncidentConfirmed, store.IncidentRejected, store.IncidentDuplicate},
	store.IncidentTriage:      {store.IncidentConfirmed, store.IncidentRejected, store.IncidentDuplicate},
	store.IncidentConfirmed:   {store.IncidentFixing, store.IncidentPrenotified, store.IncidentPublished, store.IncidentRejected},
	store.IncidentFixing:      {store.IncidentPrenotified, store.IncidentPublished},
	store.IncidentPrenotified: {store.IncidentPublished},
	store.IncidentPublished:   {store.IncidentClosed},
	store.IncidentRejected:    {store.IncidentTriage, store.IncidentClosed},
	store.IncidentDuplicate:   {store.IncidentTriage, store.IncidentClosed},
}

func (o *op) to(state string) error {
	from := o.in.State
	if from == state {
		return nil
	}
	if !slices.Contains(transitions[from], state) {
		return refuse("incident %s is %s; it cannot become %s from there (next: %s)", o.in.ID, from, state,
			strings.Join(transitions[from], ", "))
	}
	o.in.State = state
	return o.event("state", "%s -> %s", from, state)
}

// take records that a human of the team took the report: a new incident
// goes to triage and is no longer escalated.
func (o *op) take() error {
	if o.actor == System || o.in.State != store.IncidentNew {
		return nil
	}
	o.in.AckedAt = o.now
	return o.to(store.IncidentTriage)
}

// coordinator refuses actors that are neither the CLI nor a coordinator.
func (o *op) coordinator(what string) error {
	if o.actor.Role == "" || o.actor.Role == lists.RoleCoordinator {
		return nil
	}
	return refuse("%s is for coordinators; %s is a %s on %s", what, o.actor.Who, o.actor.Role, o.in.ID)
}

func (o *op) editable(what string) error {
	if err := o.coordinator(what); err != nil {
		return err
	}
	switch o.in.State {
	case store.IncidentClosed:
		return refuse("incident %s is closed", o.in.ID)
	}
	return o.take()
}

// Triage takes a new report into triage.
func (p *Op) Triage() error {
	o := p.o
	if err := o.coordinator("triage"); err != nil {
		return err
	}
	if o.in.State != store.IncidentNew {
		o.note("%s is already %s", o.in.ID, o.in.State)
		return nil
	}
	if err := o.take(); err != nil {
		return err
	}
	o.note("%s taken into triage", o.in.ID)
	return o.save()
}

// Confirm confirms the report with a privacy: private (embargo path),
// public or zero-day (fast path). An empty privacy keeps the incident's
// own (a new incident is private), so confirming again never turns a
// public incident private. The reporter is told.
func (p *Op) Confirm(privacy string) error {
	o := p.o
	if privacy == "" {
		privacy = o.in.Privacy
	}
	if privacy == "" {
		privacy = Private
	}
	if privacy != Private && privacy != Public && privacy != ZeroDay {
		return refuse("privacy %q: use private, public or zero-day", privacy)
	}
	if err := o.editable("confirm"); err != nil {
		return err
	}
	if err := o.to(store.IncidentConfirmed); err != nil {
		return err
	}
	o.in.Privacy = privacy
	if err := o.event("privacy", "%s", privacy); err != nil {
		return err
	}
	o.note("%s confirmed (%s)", o.in.ID, privacy)
	if privacy != Private {
		o.note("fast path: no embargo; publish as soon as a fix or work-around is recorded")
		if len(o.d.External) > 0 {
			o.note("tell %s now, without waiting for the fix: record a title and description, then public-notice %s (x-public-notice)", strings.Join(o.d.External, ", "), o.in.ID)
		}
	}
	if err := o.tellReporter("confirmed", ""); err != nil {
		return err
	}
	return o.save()
}

// Reject rejects the report with a reason the reporter is told.
func (p *Op) Reject(reason string) error {
	o := p.o
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return refuse("a rejection needs a reason (it is sent to the reporter)")
	}
	if err := o.editable("reject"); err != nil {
		return err
	}
	if err := o.to(store.IncidentRejected); err != nil {
		return err
	}
	o.in.Facts.RejectReason = reason
	o.note("%s rejected", o.in.ID)
	if err := o.tellReporter("rejected", reason); err != nil {
		return err
	}
	return o.save()
}

// Duplicate marks the report as a duplicate of incident of.
func (p *Op) Duplicate(of string) error {
	o := p.o
	of = strings.TrimSpace(of)
	if !publish.ValidID(of) || of == o.in.ID {
		return refuse("duplicate of %q: give another incident's ID, e.g. 2026-001", of)
	}
	if err := o.editable("duplicate"); err != nil {
		return err
	}
	if _, err := o.d.load(o.ctx, o.tx, of); err != nil {
		return err
	}
	if err := o.to(store.IncidentDuplicate); err != nil {
		return err
	}
	o.in.Facts.DuplicateOf = of
	o.note("%s is a duplicate of %s", o.in.ID, of)
	if err := o.tellReporter("duplicate", of); err != nil {
		return err
	}
	return o.save()
}

// Fixing records that work on a fix started.
func (p *Op) Fixing() error {
	o := p.o
	if err := o.editable("fixing"); err != nil {
		return err
	}
	if err := o.to(store.IncidentFixing); err != nil {
		return err
	}
	o.note("%s is being fixed", o.in.ID)
	return o.save()
}

// Close closes a published, rejected or duplicate incident.
func (p *Op) Close() error {
	o := p.o
	if err := o.coordinator("close"); err != nil {
		return err
	}
	if err := o.to(store.IncidentClosed); err != nil {
		return err
	}
	o.in.ClosedAt = o.now
	o.note("%s closed", o.in.ID)
	return o.save()
}

// tellReporter sends the triage decision to the reporter: encrypted when
// their key is known, else plain (it holds no detail of the report).
func (o *op) tellReporter(decision, detail string) error {
	if o.in.Reporter == "" {
		return nil
	}
	r, err := render("triage", map[string]any{"ID": o.in.ID, "ListAddress": o.d.ListAddress(o.in.ID), "Decision": decision,
		"Reason": detail, "Privacy": o.in.Privacy})
	if err != nil {
		return err
	}
	_, _, err = o.sendOne("triage", o.in.Reporter, r, store.OriginNotice, true, "")
	return err
}

var cveRE = regexp.MustCompile(`^CVE-[0-9]{4}-[0-9]{4,19}$`)

// SetCVE records the CVE ID.
func (p *Op) SetCVE(id string) error {
	o := p.o
	id = strings.ToUpper(strings.TrimSpace(id))
	if !cveRE.MatchString(id) {
		return refuse("%q is not a CVE ID; write it like CVE-2026-12345", id)
	}
	if err := o.editable("cve"); err != nil {
		return err
	}
	if old := o.in.Facts.CVE; old != "" && old != id {
		o.note("CVE changed from %s", old)
	}
	o.in.Facts.CVE = id
	if err := o.event("cve", "%s", id); err != nil {
		return err
	}
	o.note("%s: CVE %s", o.in.ID, id)
	return o.save()
}

// SetCVSS records a CVSS vector; one per CVSS major version, a new one
// replaces the old.
func (p *Op) SetCVSS(vector string) error {
	o := p.o
	c, err := publish.ParseCVSS(vector)
	if err != nil {
		return refuse("CVSS: %v", err)
	}
	if err := o.editable("cvss"); err != nil {
		return err
	}
	var keep []string
	for _, v := range o.in.Facts.CVSS {
		if old, err := publish.ParseCVSS(v); err == nil && old.Version[:1] != c.Version[:1] {
			keep = append(keep, v)
		}
	}
	o.in.Facts.CVSS = append(keep, c.Vector)
	if err := o.event("cvss", "%s", c.Vector); err != nil {
		return err
	}
	o.note("%s: CVSS v%s %s (%s) %s", o.in.ID, c.Version, c.ScoreString(), c.Severity, c.Vector)
	return o.save()
}

// Versions records a package's affected range: introduced (empty: from
// the start) up to fixed (empty: no fix yet). The range type is SEMVER
// unless typ says ECOSYSTEM or GIT.
func (p *Op) Versions(pkg, introduced, fixed, typ string) error {
	o := p.o
	pkg = strings.TrimSpace(pkg)
	if pkg == "" || strings.ContainsAny(pkg, "\r\n") {
		return refuse("versions: name the package, e.g. 'versions libexample introduced=1.0 fixed=1.4.2'")
	}
	for _, v := range [][2]string{{"package", pkg}, {"introduced version", introduced}, {"fixed version", fixed}} {
		if err := checkText(v[0], v[1], false); err != nil {
			return err
		}
	}
	rt := publish.RangeType(strings.ToUpper(typ))
	if rt == "" {
		rt = publish.RangeSemver
	}
	if rt != publish.RangeSemver && rt != publish.RangeEcosystem && rt != publish.RangeGit {
		return refuse("versions: range type %q: use SEMVER, ECOSYSTEM or GIT", typ)
	}
	if err := o.editable("versions"); err != nil {
		return err
	}
	if introduced == "" {
		introduced = "0"
	}
	r := publish.Range{Type: rt, Introduced: introduced, Fixed: fixed}
	found := false
	for i := range o.in.Facts.Packages {
		if o.in.Facts.Packages[i].Name == pkg {
			o.in.Facts.Packages[i].Ranges = append(o.in.Facts.Packages[i].Ranges, r)
			found = true
		}
	}
	if !found {
		o.in.Facts.Packages = append(o.in.Facts.Packages, publish.Package{Name: pkg, Ranges: []publish.Range{r}})
	}
	if err := o.event("versions", "%s introduced %s fixed %s", pkg, introduced, orNone(fixed)); err != nil {
		return err
	}
	o.note("%s: %s affected from %s, fixed in %s", o.in.ID, pkg, introduced, orNone(fixed))
	return o.save()
}

// ClearVersions forgets the recorded versions.
func (p *Op) ClearVersions() error {
	o := p.o
	if err := o.editable("versions"); err != nil {
		return err
	}
	if !o.in.PublishedAt.IsZero() {
		return refuse("the versions of published incident %s cannot be cleared: its advisory page would disappear; add corrected ranges", o.in.ID)
	}
	o.in.Facts.Packages = nil
	o.note("%s: versions cleared", o.in.ID)
	if err := o.event("versions", "cleared"); err != nil {
		return err
	}
	return o.save()
}

// Backport records the backport decision for a release branch.
func (p *Op) Backport(version, decision string) error {
	o := p.o
	version, decision = strings.TrimSpace(version), strings.TrimSpace(decision)
	if version == "" || decision == "" {
		return refuse("backport: give a version and a decision, e.g. 'backport 1.3 yes'")
	}
	if err := checkText("backport", version+" "+decision, false); err != nil {
		return err
	}
	if err := o.editable("backport"); err != nil {
		return err
	}
	if o.in.Facts.Backports == nil {
		o.in.Facts.Backports = map[string]string{}
	}
	o.in.Facts.Backports[version] = decision
	if err := o.event("backport", "%s: %s", version, decision); err != nil {
		return err
	}
	o.note("%s: backport to %s: %s", o.in.ID, version, decision)
	return o.save()
}

func orNone(s string) string {
	if s == "" {
		return "(none yet)"
	}
	return s
}

// Credit records a credit: a name as the person wants it, or anonymous.
func (p *Op) Credit(name, typ string, anonymous bool) error {
	o := p.o
	name = strings.TrimSpace(name)
	if strings.EqualFold(name, "anonymous") {
		anonymous, name = true, ""
	}
	if name == "" && !anonymous || strings.ContainsAny(name, "\r\n") {
		return refuse("credit: give a name on one line, or 'anonymous'")
	}
	if err := checkText("credit", name, false); err != nil {
		return err
	}
	c := publish.Credit{Name: name, Type: publish.CreditType(strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(typ), " ", "_"))), Anonymous: anonymous}
	if c.Kind().Words() == "" {
		return refuse("credit type %q: use finder, reporter, analyst, coordinator, remediation_developer, remediation_reviewer, remediation_verifier, tool, sponsor or other", typ)
	}
	if err := o.editable("credit"); err != nil {
		return err
	}
	o.in.Facts.Credits = append(o.in.Facts.Credits, c)
	if err := o.event("credit", "%s (%s)", c.DisplayName(), c.Kind().Words()); err != nil {
		return err
	}
	o.note("%s: credit %s (%s)", o.in.ID, c.DisplayName(), c.Kind().Words())
	return o.save()
}

// Set records a text fact: title, description, type, cwe, workaround,
// upstream (advisory URL), reference (URL, added) or note (internal,
// added). Text that would spoof or break a public output (bidirectional
// formatting and control characters) is refused.
func (p *Op) Set(field, value string) error {
	o := p.o
	value = strings.TrimSpace(strings.ReplaceAll(value, "\r\n", "\n"))
	if field == "reporter" {
		return p.setReporter(value)
	}
	f := &o.in.Facts
	switch field {
	case "title", "type", "cwe", "upstream", "reference":
		if err := checkText(field, value, false); err != nil {
			return err
		}
	case "description", "workaround", "note":
		if err := checkText(field, value, true); err != nil {
			return err
		}
	default:
		return refuse("unknown fact %q: use title, description, type, cwe, workaround, upstream, reference, note or reporter", field)
	}
	if value == "" && (field == "title" || field == "description" || field == "note") && !o.in.PublishedAt.IsZero() {
		return refuse("%s of published incident %s cannot be emptied: its advisory page would disappear; set a new text", field, o.in.ID)
	}
	if err := o.editable(field); err != nil {
		return err
	}
	switch field {
	case "title":
		f.Title = value
	case "description":
		f.Description = value
	case "type":
		f.ProblemType = value
	case "cwe":
		if value != "" && !regexp.MustCompile(`^CWE-[1-9][0-9]*$`).MatchString(value) {
			return refuse("%q is not a CWE ID; write it like CWE-787", value)
		}
		f.CWE = value
	case "workaround":
		f.Workaround = value
	case "upstream":
		if value != "" && !strings.HasPrefix(value, "https://") && !strings.HasPrefix(value, "http://") {
			return refuse("upstream advisory: give its http(s) URL")
		}
		f.UpstreamAdvisory = value
	case "reference":
		if !strings.HasPrefix(value, "https://") && !strings.HasPrefix(value, "http://") {
			return refuse("reference: give an http(s) URL")
		}
		f.References = append(f.References, value)
	case "note":
		if value == "" {
			return refuse("note: give the text of the note")
		}
		f.Notes = append(f.Notes, value)
	}
	// The timeline says what changed, not the (embargoed) text.
	if err := o.event("fact", "%s set (%d characters)", field, len(value)); err != nil {
		return err
	}
	o.note("%s: %s recorded", o.in.ID, field)
	if o.in.Facts.ReleaseHeld != "" {
		o.note("the release is held for a complete advisory; cvd releases it at its next pass once complete")
	}
	return o.save()
}

// checkText refuses a value CheckText refuses, naming the field.
func checkText(field, value string, multiline bool) error {
	if err := publish.CheckText(value, multiline); err != nil {
		return refuse("%s %v; remove it", field, err)
	}
	return nil
}

// ProposeDate returns a compliant public date for notice sent now.
func (p *Op) ProposeDate() time.Time {
	return p.o.d.Policy.Propose(p.o.now)
}

// SetEmbargo sets or changes the public date, checking the rules; after
// the pre-notification, every member is told of the change.
func (p *Op) SetEmbargo(date time.Time, override string) error {
	o := p.o
	if err := o.editable("embargo"); err != nil {
		return err
	}
	if o.in.Privacy != Private {
		return refuse("incident %s is %s: the fast path has no embargo; publish it when a fix or work-around exists", o.in.ID, o.in.Privacy)
	}
	switch o.in.State {
	case store.IncidentPublished, store.IncidentRejected, store.IncidentDuplicate:
		return refuse("incident %s is %s; its date cannot change", o.in.ID, o.in.State)
	}
	date = date.UTC().Truncate(time.Minute)
	if !o.in.FirstNoticeAt.IsZero() {
		if err := o.checkHardLimit(date, nil); err != nil {
			return err
		}
	}
	warnings, err := o.d.Policy.check(date, o.now, o.in.FirstNoticeAt, override)
	if err != nil {
		return err
	}
	old := o.in.EmbargoAt
	o.in.EmbargoAt = date
	if strings.TrimSpace(override) != "" {
		o.in.EmbargoOverride = strings.TrimSpace(override)
	}
	detail := utc(date)
	if !old.IsZero() {
		detail = utc(old) + " -> " + utc(date)
	}
	if o.in.EmbargoOverride != "" && date.Sub(firstOr(o.in.FirstNoticeAt, o.now)) > o.d.Policy.MaxEmbargo {
		detail += "; exceeds the maximum: " + o.in.EmbargoOverride
	}
	if err := o.event("embargo", "%s", detail); err != nil {
		return err
	}
	o.note("%s: public date %s", o.in.ID, utc(date))
	for _, w := range warnings {
		o.note("warning: %s", w)
	}
	if o.in.FirstNoticeAt.IsZero() {
		if date.Sub(o.now) > o.d.Policy.MaxEmbargo {
			o.note("the pre-notification must go out by %s (at most %s before the date)", utc(date.Add(-o.d.Policy.MaxEmbargo)), human(o.d.Policy.MaxEmbargo))
		}
	} else if !old.Equal(date) {
		r, err := render("datechange", map[string]any{"ID": o.in.ID, "Date": utc(date), "OldDate": utc(old),
			"Reason": o.in.EmbargoOverride, "ListAddress": o.d.ListAddress(o.in.ID), "Prefix": o.d.Policy.SubjectPrefix})
		if err != nil {
			return err
		}
		sent, missed, err := o.sealToMembers("datechange", r, nil)
		if err != nil {
			return err
		}
		o.note("date change sent to %d members", len(sent))
		if len(missed) > 0 {
			o.note("not told (no usable key): %s", strings.Join(missed, ", "))
		}
		// A silent downstream is reminded again before the new date.
		if _, err := o.tx.ExecContext(o.ctx, `UPDATE incident_downstream SET reminded_at = 0 WHERE incident = ? AND acked_at = 0`, o.in.ID); err != nil {
			return fmt.Errorf("reset reminders of %s: %w", o.in.ID, err)
		}
	}
	return o.save()
}

func firstOr(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}
