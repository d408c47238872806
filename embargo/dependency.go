package embargo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/cvd-project/cvd/deps"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/publish"
	"github.com/cvd-project/cvd/store"
)

// Dependency incidents. An upstream advisory (OSV) that matches a
// component the project ships opens one incident, for the team only: no
// reporter, no acknowledgement, the team's coordinators told by a sealed
// notice. The advisory is public already, so the incident takes the fast
// path (privacy public). The team decides: not affected, with a VEX
// justification (the incident is rejected and a VEX statement is
// published), or affected (the incident is confirmed and runs as usual;
// its advisory names the upstream one as related).

// Decisions on a dependency incident.
const (
	NotAffected = "not_affected"
	Affected    = "affected"
)

// DependencyFacts is what a dependency incident knows of its upstream
// advisory and the team's decision.
type DependencyFacts struct {
	Advisory   string                `json:"advisory"`
	Aliases    []string              `json:"aliases,omitempty"`
	Summary    string                `json:"summary,omitempty"`
	Ranges     []string              `json:"ranges,omitempty"`
	Components []DependencyComponent `json:"components,omitempty"`
	// Undecided are components matched after the decision, which it
	// does not cover until the team decides again.
	Undecided []DependencyComponent `json:"undecided,omitempty"`
	// Decision is NotAffected or Affected ("" while undecided), with the
	// VEX justification and the impact statement of NotAffected.
	Decision      string    `json:"decision,omitempty"`
	Justification string    `json:"justification,omitempty"`
	Impact        string    `json:"impact,omitempty"`
	DecidedAt     time.Time `json:"decided_at,omitzero"`
	// StatementAt is when the team decided not affected, the date of the
	// VEX statement; Revised when it reversed that decision (affected
	// after all): the statement then says so, in a second revision.
	StatementAt time.Time `json:"statement_at,omitzero"`
	Revised     time.Time `json:"revised,omitzero"`
	// Withdrawn is when the upstream advisory was withdrawn (zero while
	// it stands); the coordinators were told once.
	Withdrawn time.Time `json:"withdrawn,omitzero"`
}

// DependencyComponent is a shipped component an advisory matched.
type DependencyComponent struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	Version   string `json:"version"`
}

func (c DependencyComponent) String() string {
	return c.Name + " " + c.Version + " (" + c.Ecosystem + ")"
}

// DependencyOutcome is what recording one matched advisory did.
type DependencyOutcome struct {
	Advisory string
	Incident string
	// Opened is true when the advisory opened Incident now.
	Opened bool
	// Added are components a known advisory matches anew.
	Added []string
}

// DependencyResult is what recording one check's matches did.
type DependencyResult struct {
	Outcomes []DependencyOutcome
	// Withdrawn are the incidents whose advisory was withdrawn upstream
	// since the last check (Advisory and Incident set).
	Withdrawn []DependencyOutcome
}

// Opened returns how many incidents were opened.
func (r *DependencyResult) Opened() int {
	n := 0
	for _, o := range r.Outcomes {
		if o.Opened {
			n++
		}
	}
	return n
}

// Added returns how many components known advisories matched anew.
func (r *DependencyResult) Added() int {
	n := 0
	for _, o := range r.Outcomes {
		n += len(o.Added)
	}
	return n
}

// RecordDependencies opens an incident for each matched advisory that has
// none yet, and records on the existing incident the components an
// advisory matches anew. Each advisory is one transaction: an advisory
// opens exactly one incident, whatever the number of checks.
func (d *Desk) RecordDependencies(ctx context.Context, ms []deps.Match) (*DependencyResult, error) {
	res := &DependencyResult{}
	for _, m := range ms {
		out := DependencyOutcome{Advisory: m.Advisory.ID}
		err := d.DB.Write(ctx, func(tx *sql.Tx) error {
			out = DependencyOutcome{Advisory: m.Advisory.ID}
			id, err := store.DependencyIncidentTx(ctx, tx, m.Advisory.ID)
			switch {
			case errors.Is(err, store.ErrNotFound):
				out.Incident, err = d.openDependencyTx(ctx, tx, m)
				out.Opened = true
				return err
			case err != nil:
				return err
			}
			out.Incident = id
			out.Added, err = d.addMatchesTx(ctx, tx, id, m)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("dependency advisory %s: %w", m.Advisory.ID, err)
		}
		if out.Opened {
			d.log().Info("dependency incident opened", "incident", out.Incident, "advisory", m.Advisory.ID)
		}
		res.Outcomes = append(res.Outcomes, out)
	}
	return res, nil
}

// clean makes upstream text safe for one line of a notice or a public
// page: control and bidirectional formatting characters are dropped,
// whitespace runs become one space, and it is cut at max runes.
func clean(s string, max int) string {
	var b strings.Builder
	space := false
	n := 0
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || unicode.Is(unicode.Join_Control, r) || r == '\u2028' || r == '\u2029' {
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if n++; n > max {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

func dependencyComponents(cs []deps.Component) []DependencyComponent {
	var out []DependencyComponent
	for _, c := range cs {
		out = append(out, DependencyComponent{Ecosystem: clean(c.Ecosystem, 100), Name: clean(c.Name, 300), Version: clean(c.Version, 200)})
	}
	return out
}

func (d *Desk) openDependencyTx(ctx context.Context, tx *sql.Tx, m deps.Match) (string, error) {
	now := d.now()
	id, seq, err := store.NextIncidentIDTx(ctx, tx, now.Year())
	if err != nil {
		return "", err
	}
	a := m.Advisory
	f := DependencyFacts{Advisory: a.ID, Summary: clean(a.Summary, 300), Components: dependencyComponents(m.Components)}
	for _, x := range a.Aliases {
		f.Aliases = append(f.Aliases, clean(x, 100))
	}
	for _, r := range m.Ranges {
		f.Ranges = append(f.Ranges, clean(r, 500))
	}
	var names []string
	for _, c := range f.Components {
		if !containsString(names, c.Name) {
			names = append(names, c.Name)
		}
	}
	title := "Vulnerable dependency " + strings.Join(names, ", ")
	if f.Summary != "" {
		title += ": " + f.Summary
	}
	in := &Incident{Incident: store.Incident{ID: id, Year: now.Year(), Seq: seq, State: store.IncidentNew, Privacy: Public, CreatedAt: now}}
	in.Facts.Title = clean(title, 300)
	in.Facts.UpstreamAdvisory = a.URL()
	in.Facts.Dependency = &f
	if err := store.CreateIncidentTx(ctx, tx, &in.Incident); err != nil {
		return "", err
	}
	if _, err := d.Lists.CreateListTx(ctx, tx, id, store.ListIncident, "incident "+id); err != nil {
		return "", err
	}
	o := &op{d: d, ctx: ctx, tx: tx, in: in, actor: System, now: now, prevState: in.State}
	var comps []string
	for _, c := range f.Components {
		comps = append(comps, c.String())
	}
	if err := o.event("opened", "dependency advisory %s matches %s", a.ID, strings.Join(comps, ", ")); err != nil {
		return "", err
	}
	for _, p := range d.Team {
		if err := d.addPerson(ctx, tx, id, p, lists.RoleCoordinator); err != nil {
			return "", err
		}
	}
	if err := store.AddDependencyAdvisoryTx(ctx, tx, a.ID, id, a.Modified.UTC().Format(time.RFC3339), now); err != nil {
		return "", err
	}
	for _, c := range m.Components {
		if _, err := store.AddDependencyMatchTx(ctx, tx, store.DependencyMatch{Advisory: a.ID, Ecosystem: c.Ecosystem, Name: c.Name,
			Version: c.Version, Source: c.Source, FoundAt: now}); err != nil {
			return "", err
		}
	}
	r, err := render("dependency", map[string]any{"ID": id, "UpstreamID": a.ID, "Aliases": strings.Join(f.Aliases, ", "),
		"Summary": f.Summary, "URL": a.URL(), "Ranges": f.Ranges, "Components": comps, "ListAddress": d.ListAddress(id),
		"Project": d.Project.Name, "Justifications": strings.Join(deps.Justifications, ", ")})
	if err != nil {
		return "", err
	}
	sent, missed, err := o.sealToMembers("dependency", r, func(m recipient) bool { return m.Role == lists.RoleCoordinator })
	if err != nil {
		return "", err
	}
	if len(sent) == 0 {
		d.log().Warn("dependency incident opened and no coordinator could be told", "incident", id, "without_key", len(missed))
	}
	if err := o.event("notice", "dependency advisory sent to %d coordinators", len(sent)); err != nil {
		return "", err
	}
	return id, o.save()
}

func containsString(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// addMatchesTx records components that a known advisory matches anew on
// its incident and tells the coordinators. A decision already taken does
// not cover them: they wait in Undecided (and out of the VEX statement)
// until the team decides again.
func (d *Desk) addMatchesTx(ctx context.Context, tx *sql.Tx, id string, m deps.Match) ([]string, error) {
	o, err := d.beginOp(ctx, tx, id, System)
	if err != nil {
		return nil, err
	}
	f := o.in.Facts.Dependency
	var added []string
	for _, c := range m.Components {
		ok, err := store.AddDependencyMatchTx(ctx, tx, store.DependencyMatch{Advisory: m.Advisory.ID, Ecosystem: c.Ecosystem, Name: c.Name,
			Version: c.Version, Source: c.Source, FoundAt: o.now})
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		dc := dependencyComponents([]deps.Component{c})[0]
		added = append(added, dc.String())
		switch {
		case f == nil:
		case f.Decision == "":
			f.Components = append(f.Components, dc)
		default:
			f.Undecided = append(f.Undecided, dc)
		}
		if err := o.event("dependency", "%s also matches %s", m.Advisory.ID, dc.String()); err != nil {
			return nil, err
		}
	}
	if len(added) == 0 {
		return nil, nil
	}
	decided := ""
	if f != nil && f.Decision != "" {
		decided = strings.ReplaceAll(f.Decision, "_", " ")
	}
	r, err := render("dependency-more", map[string]any{"ID": id, "UpstreamID": m.Advisory.ID, "Components": added,
		"Decided": decided, "ListAddress": d.ListAddress(id)})
	if err != nil {
		return nil, err
	}
	if _, _, err := o.sealToMembers("dependency", r, func(m recipient) bool { return m.Role == lists.RoleCoordinator }); err != nil {
		return nil, err
	}
	return added, o.save()
}

// dependency returns the incident's dependency facts or a refusal.
func (o *op) dependency() (*DependencyFacts, error) {
	if o.in.Facts.Dependency == nil {
		return nil, refuse("incident %s is not a dependency incident: a VEX decision needs an upstream advisory", o.in.ID)
	}
	return o.in.Facts.Dependency, nil
}

// NotAffected records the team's decision that the project is not
// affected by the upstream advisory, with a VEX justification (one of
// deps.Justifications) and optionally why in words. The incident is
// rejected; its VEX statement is published on the site.
func (p *Op) NotAffected(justification, impact string) error {
	o := p.o
	f, err := o.dependency()
	if err != nil {
		return err
	}
	j, err := deps.ParseJustification(justification)
	if err != nil {
		return refuse("not_affected: %v", err)
	}
	impact = strings.TrimSpace(strings.ReplaceAll(impact, "\r\n", "\n"))
	if err := checkText("impact statement", impact, true); err != nil {
		return err
	}
	if f.Decision == Affected {
		return refuse("incident %s was decided affected; it follows the usual flow", o.in.ID)
	}
	if err := o.editable("vex"); err != nil {
		return err
	}
	if err := o.to(store.IncidentRejected); err != nil {
		return err
	}
	f.Decision, f.Justification, f.Impact, f.DecidedAt, f.StatementAt = NotAffected, j, impact, o.now, o.now
	f.Components, f.Undecided = append(f.Components, f.Undecided...), nil
	o.in.Facts.RejectReason = "not affected: " + strings.ReplaceAll(j, "_", " ")
	if err := o.event("vex", "not affected by %s: %s", f.Advisory, j); err != nil {
		return err
	}
	o.note("%s: not affected by %s (%s); the VEX statement is on the site at %s", o.in.ID, f.Advisory, j, o.d.vexURL(o.in.ID))
	return o.save()
}

// Affected records that the project is affected by the upstream
// advisory: the incident is confirmed and runs as usual, its advisory
// naming the upstream one as related. After a decision not affected it
// reverses it: the incident is taken up again and its published VEX
// statement is revised to say affected.
func (p *Op) Affected() error {
	o := p.o
	f, err := o.dependency()
	if err != nil {
		return err
	}
	if f.Decision == NotAffected {
		return p.reverse(f)
	}
	again := f.Decision == Affected
	if again {
		// The incident runs already; the decision now covers the
		// components found since.
		if err := o.editable("vex"); err != nil {
			return err
		}
	}
	f.Decision, f.DecidedAt = Affected, o.now
	f.Components, f.Undecided = append(f.Components, f.Undecided...), nil
	if err := o.event("vex", "affected by %s", f.Advisory); err != nil {
		return err
	}
	o.note("%s: affected by %s; record the versions and the fix, then publish", o.in.ID, f.Advisory)
	if again {
		return o.save()
	}
	return p.Confirm("")
}

// reverse turns a decision not affected into affected: the rejected
// incident goes back through triage to confirmed, and its VEX statement
// stays published, revised.
func (p *Op) reverse(f *DependencyFacts) error {
	o := p.o
	if err := o.editable("vex"); err != nil {
		return err
	}
	if o.in.State == store.IncidentRejected {
		if err := o.to(store.IncidentTriage); err != nil {
			return err
		}
	}
	if f.StatementAt.IsZero() {
		f.StatementAt = f.DecidedAt
	}
	was := f.Justification
	f.Decision, f.DecidedAt, f.Revised = Affected, o.now, o.now
	f.Components, f.Undecided = append(f.Components, f.Undecided...), nil
	o.in.Facts.RejectReason = ""
	if err := o.event("vex", "revised: affected by %s after all (the statement of %s said not affected: %s)", f.Advisory, utc(f.StatementAt), was); err != nil {
		return err
	}
	o.note("%s: affected by %s after all; the VEX statement at %s now says so (revision 2). Record the versions and the fix, then publish", o.in.ID, f.Advisory, o.d.vexURL(o.in.ID))
	return p.Confirm("")
}

func (d *Desk) vexURL(id string) string {
	return d.Project.BaseURL() + "/vex/" + id + ".csaf.json"
}

// VEX returns the VEX statement of a dependency incident decided not
// affected.
func (d *Desk) VEX(ctx context.Context, id string) (*deps.Statement, error) {
	in, err := d.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	s := d.statement(in)
	if s == nil {
		return nil, refuse("incident %s has no VEX statement: only a dependency incident decided not affected has one", in.ID)
	}
	return s, nil
}

func (d *Desk) statement(in *Incident) *deps.Statement {
	f := in.Facts.Dependency
	if f == nil || !(f.Decision == NotAffected || f.Decision == Affected && !f.Revised.IsZero()) {
		return nil
	}
	date := f.StatementAt
	if date.IsZero() {
		date = f.DecidedAt
	}
	s := &deps.Statement{ID: d.Project.Prefix() + "-VEX-" + in.ID, Publisher: d.Project.Vendor, Namespace: d.Project.BaseURL(),
		Product: d.Project.Name, Contact: "security@" + d.Project.Domain, URL: d.vexURL(in.ID), Advisory: f.Advisory,
		Aliases: f.Aliases, Summary: f.Summary, Justification: f.Justification, Impact: f.Impact, Date: date, Revised: f.Revised}
	for _, c := range f.Components {
		s.Components = append(s.Components, deps.Component{Ecosystem: c.Ecosystem, Name: c.Name, Version: c.Version})
	}
	return s
}

// VEXStatements returns the statements of every incident decided not
// affected, for the public site.
func (d *Desk) VEXStatements(ctx context.Context) ([]publish.VEXDocument, error) {
	ins, err := d.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []publish.VEXDocument
	for _, in := range ins {
		s := d.statement(in)
		if s == nil {
			continue
		}
		csaf, err := s.CSAF()
		if err != nil {
			return nil, fmt.Errorf("VEX statement of %s: %w", in.ID, err)
		}
		ov, err := s.OpenVEX()
		if err != nil {
			return nil, fmt.Errorf("VEX statement of %s: %w", in.ID, err)
		}
		var comps []string
		for _, c := range s.Components {
			comps = append(comps, c.Name+" "+c.Version)
		}
		out = append(out, publish.VEXDocument{ID: in.ID, Advisory: s.Advisory, Summary: s.Summary, Components: comps,
			Status: vexStatus(s), Date: s.Date, CSAF: csaf, OpenVEX: ov})
	}
	return out, nil
}

// vexStatus is a statement's status in words, for the site.
func vexStatus(s *deps.Statement) string {
	not := "not affected: " + strings.ReplaceAll(s.Justification, "_", " ")
	if s.Revised.IsZero() {
		return not
	}
	return "affected (revised " + s.Revised.UTC().Format("2006-01-02") + "; first stated " + not + ")"
}

// VEXKeyword runs "vex" from the keyword or the CLI: "not_affected
// JUSTIFICATION [why, in words]" or "affected".
func (p *Op) VEXKeyword(args string) error {
	decision, rest, _ := strings.Cut(strings.TrimSpace(args), " ")
	switch strings.ToLower(strings.ReplaceAll(decision, "-", "_")) {
	case NotAffected:
		j, impact, _ := strings.Cut(strings.TrimSpace(rest), " ")
		return p.NotAffected(j, impact)
	case Affected:
		if strings.TrimSpace(rest) != "" {
			return refuse("vex affected takes nothing more; record the versions with x-versions")
		}
		return p.Affected()
	}
	return refuse("vex: use 'not_affected JUSTIFICATION [why]' (JUSTIFICATION: %s) or 'affected'", strings.Join(deps.Justifications, ", "))
}
