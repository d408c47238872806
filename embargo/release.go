package embargo

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/publish"
	"github.com/cvd-project/cvd/store"
	"github.com/cvd-project/cvd/templates"
)

// addPerson adds a team member or downstream to an incident list. A
// configured address gets its configured key, which is authoritative; for
// another address p.Key is pinned when none is pinned yet.
func (d *Desk) addPerson(ctx context.Context, tx *sql.Tx, list string, p Person, role string) error {
	var key []byte
	if cp, ok := d.configured(p.Email); ok {
		c, err := d.pinConfigKeyTx(ctx, tx, cp)
		if err != nil {
			return err
		}
		if c != nil {
			if err := d.tellConflictsTx(ctx, tx, []*keyConflict{c}); err != nil {
				return err
			}
		}
	} else if p.Key != nil {
		_, err := store.PinnedKeyTx(ctx, tx, strings.ToLower(p.Email))
		switch {
		case errors.Is(err, store.ErrNotFound):
			key = p.Key
		case err != nil:
			return err
		}
	}
	nm := lists.NewMember{Email: p.Email, Name: p.Name, Role: role, Key: key, Actor: "cvd"}
	_, err := d.Lists.AddMemberTx(ctx, tx, list, nm)
	if err != nil && key != nil && !errors.Is(err, store.ErrExists) {
		d.log().Warn("configured key not pinned", "incident", list, "email", p.Email, "err", err)
		nm.Key = nil
		_, err = d.Lists.AddMemberTx(ctx, tx, list, nm)
	}
	if errors.Is(err, store.ErrExists) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("add %s to %s: %w", p.Email, list, err)
	}
	return nil
}

// advisory builds the incident's advisory as of published.
func (d *Desk) advisory(in *Incident, status publish.Status, published time.Time) (*publish.Advisory, error) {
	f := in.Facts.Public()
	a := &publish.Advisory{ID: in.ID, Title: f.Title, Description: f.Description, ProblemType: f.ProblemType, CWE: f.CWE,
		CVE: f.CVE, CVSS: f.CVSS, Packages: f.Packages, Workaround: f.Workaround, Credits: f.Credits,
		UpstreamAdvisory: f.UpstreamAdvisory, Published: published, Status: status, Project: d.Project}
	for _, r := range f.References {
		a.References = append(a.References, publish.Reference{URL: r})
	}
	if f.Dependency != nil {
		a.Related = append([]string{f.Dependency.Advisory}, f.Dependency.Aliases...)
	}
	if err := a.Validate(); err != nil {
		return a, err
	}
	return a, nil
}

// Advisory returns the incident's advisory: released for a published
// incident, embargoed otherwise.
func (d *Desk) Advisory(ctx context.Context, id string) (*publish.Advisory, error) {
	in, err := d.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if in.State == store.IncidentPublished || in.State == store.IncidentClosed && !in.PublishedAt.IsZero() {
		return d.advisory(in, publish.Released, in.PublishedAt)
	}
	return d.advisory(in, publish.Embargoed, in.EmbargoAt)
}

// Published returns the advisories of released incidents (for the
// public site: publish.Source).
func (d *Desk) Published(ctx context.Context) ([]publish.Advisory, error) {
	ins, err := d.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []publish.Advisory
	for _, in := range ins {
		if in.PublishedAt.IsZero() {
			continue
		}
		a, err := d.advisory(in, publish.Released, in.PublishedAt)
		if err != nil {
			d.log().Warn("published incident has an incomplete advisory", "incident", in.ID, "err", err)
			continue
		}
		out = append(out, *a)
	}
	return out, nil
}

// Publish releases the incident. The fast path (public, zero-day)
// publishes as soon as a fix or work-around is recorded. An embargoed
// incident is released by the scheduler at its date; before it only
// breakNow with a reason (a leak, a public fix) publishes, and says so.
// An incomplete public advisory is refused with what it lacks, unless
// force: then the missing title and description become placeholders.
func (p *Op) Publish(breakNow bool, reason string, force bool) error {
	o := p.o
	if err := o.coordinator("publish"); err != nil {
		return err
	}
	if o.in.State == store.IncidentPublished || o.in.State == store.IncidentClosed {
		o.note("%s is already %s (%s)", o.in.ID, o.in.State, utc(o.in.PublishedAt))
		return nil
	}
	switch o.in.State {
	case store.IncidentConfirmed, store.IncidentFixing, store.IncidentPrenotified:
	default:
		return refuse("%s is %s, not confirmed: confirm it before publishing (cvd incident confirm %s, or x-confirm)", o.in.ID, o.in.State, o.in.ID)
	}
	if err := o.take(); err != nil {
		return err
	}
	if o.in.Privacy != Private {
		if o.in.Facts.Workaround == "" && !hasFix(o.in.Facts) {
			return refuse("incident %s is %s: record a fixed version (versions) or a work-around first", o.in.ID, o.in.Privacy)
		}
		return o.release("fast path ("+o.in.Privacy+")", false, force)
	}
	if breakNow {
		reason = strings.TrimSpace(reason)
		if reason == "" {
			return refuse("breaking the embargo needs a reason (e.g. leaked, fix public), recorded and announced")
		}
		if err := publish.CheckText(reason, false); err != nil {
			return refuse("the reason is announced publicly and %v; remove it", err)
		}
		o.in.Facts.BreakReason = reason
		return o.release("embargo broken early: "+reason, true, force)
	}
	if !o.in.EmbargoAt.IsZero() && !o.now.Before(o.in.EmbargoAt) {
		return o.release("embargo ended "+utc(o.in.EmbargoAt), false, force)
	}
	if o.in.EmbargoAt.IsZero() {
		return refuse("incident %s is private and has no public date: set one and notify, or break with --now and a reason", o.in.ID)
	}
	return refuse("incident %s is embargoed until %s and is released automatically then; to break the embargo, publish now with a reason",
		o.in.ID, utc(o.in.EmbargoAt))
}

func hasFix(f Facts) bool {
	for _, p := range f.Packages {
		if len(p.FixedVersions()) > 0 {
			return true
		}
	}
	return false
}

// release is THE release: in the caller's one transaction it marks the
// incident published (guarded by its previous state, so it happens once)
// and queues every copy: the signed announcement to each public list,
// "embargo lifted" to the members, thanks to the reporter. Everything
// public comes from the advisory, built from the public facts only; an
// incomplete one is refused (forced: completed with placeholders), so the
// announcement always links to a page that exists.
func (o *op) release(how string, broken, force bool) error {
	a, verr := o.d.advisory(o.in, publish.Released, o.now)
	if verr != nil && force {
		if filled := o.placeholders(a); len(filled) > 0 {
			if err := o.event("forced", "released incomplete: placeholder %s", strings.Join(filled, ", ")); err != nil {
				return err
			}
			o.note("forced: placeholder %s published; replace it (set %s ...) and the advisory page follows", strings.Join(filled, ", "), o.in.ID)
			a, verr = o.d.advisory(o.in, publish.Released, o.now)
		}
	}
	if verr != nil {
		return incomplete(o.in.ID, a, verr, force)
	}
	text, err := publish.TextAdvisory(a)
	if err != nil {
		return incomplete(o.in.ID, a, err, force)
	}
	if err := o.to(store.IncidentPublished); err != nil {
		return err
	}
	o.in.PublishedAt = o.now
	o.in.Facts.ReleaseHeld = ""
	if err := o.save(); err != nil {
		return err
	}
	data := map[string]any{"ID": o.in.ID, "Project": o.d.Project.Name, "Title": a.Title, "CVE": a.CVE,
		"Advisory": text, "Broken": broken, "Reason": o.in.Facts.Public().BreakReason,
		"BrokenNote": publish.Wrap("The embargo on this issue ended early (" + o.in.Facts.Public().BreakReason + "), so this advisory is published now instead of on the planned date."), "Date": utc(o.now),
		"Intake": o.d.IntakeAddress(), "ListAddress": o.d.ListAddress(o.in.ID), "URL": a.PageURL()}
	ann, err := render("announce", data)
	if err != nil {
		return err
	}
	lists, err := o.announce(ann.Subject, ann.Body)
	if err != nil {
		return err
	}
	extSubject, extBody, err := o.externalPost(a, text, broken)
	if err != nil {
		return err
	}
	for _, to := range o.d.External {
		raw, err := o.d.signedAnnouncement(extSubject, extBody, to, o.now)
		if err != nil {
			return err
		}
		if _, err := store.EnqueueTx(o.ctx, o.tx, &store.OutMessage{Rcpts: []string{to}, Raw: raw, Origin: store.OriginNotice,
			Kind: "announce", Ref: o.in.ID, CreatedAt: o.now, Urgent: true}); err != nil {
			return err
		}
	}
	if err := o.queueWebhooks(a, ann.Subject, ann.Body, broken); err != nil {
		return err
	}
	data["Lists"] = strings.Join(lists, ", ")
	lifted, err := render("lifted", data)
	if err != nil {
		return err
	}
	sent, _, err := o.sealToMembers("lifted", lifted, nil)
	if err != nil {
		return err
	}
	thanked := false
	if o.in.Reporter != "" {
		var credits []string
		for _, c := range o.in.Facts.Credits {
			credits = append(credits, c.DisplayName())
		}
		data["Credits"] = strings.Join(credits, ", ")
		thanks, err := render("thanks", data)
		if err != nil {
			return err
		}
		if thanked, _, err = o.sendOne("thanks", o.in.Reporter, thanks, store.OriginNotice, true, ""); err != nil {
			return err
		}
	}
	if err := o.event("published", "%s; announcement to %s; lifted notice to %d members; reporter thanked: %v",
		how, orDefault(strings.Join(lists, ", "), "no list"), len(sent), thanked); err != nil {
		return err
	}
	o.note("%s published (%s)", o.in.ID, how)
	o.released = true
	return nil
}

// announce publishes the announcement on the announce list (signed once,
// a copy to each subscriber) and returns the public destinations.
func (o *op) announce(subject, body string) ([]string, error) {
	var out []string
	if o.d.Announce != "" {
		var inner bytes.Buffer
		writeField(&inner, "Subject", templates.EncodeHeader(subject))
		writeField(&inner, "Content-Type", "text/plain; charset=utf-8")
		writeField(&inner, "Content-Transfer-Encoding", "8bit")
		inner.WriteString("\r\n" + crlfBody(body))
		n, err := o.d.Lists.AnnounceTx(o.ctx, o.tx, inner.Bytes(), store.OriginNotice, o.now)
		switch {
		case errors.Is(err, store.ErrNotFound):
			o.d.log().Warn("no announce list: announcement only to the external lists", "incident", o.in.ID)
		case err != nil:
			return nil, fmt.Errorf("announce %s: %w", o.in.ID, err)
		default:
			out = append(out, fmt.Sprintf("%s (%s)", o.d.Announce, plural(n, "subscriber")))
		}
	}
	return append(out, o.d.External...), nil
}

// signedAnnouncement builds the public announcement to one external list:
// PGP/MIME clear-signed by the project key.
func (d *Desk) signedAnnouncement(subject, body, to string, now time.Time) ([]byte, error) {
	from := (&mail.Address{Name: orDefault(d.Project.Name, d.Domain) + " security team", Address: d.IntakeAddress()}).String()
	var inner bytes.Buffer
	writeField(&inner, "Content-Type", "text/plain; charset=utf-8")
	writeField(&inner, "Content-Transfer-Encoding", "8bit")
	inner.WriteString("\r\n" + crlfBody(body))
	var h textproto.Header
	h.Set("From", from)
	h.Set("To", to)
	h.Set("Subject", templates.EncodeHeader(subject))
	h.Set("Date", now.Format(time.RFC1123Z))
	h.Set("Message-Id", newMessageID(d.Domain))
	raw, err := crypto.SignClear(inner.Bytes(), h, d.Key, now)
	if err != nil {
		return nil, fmt.Errorf("sign announcement: %w", err)
	}
	return raw, nil
}

// Placeholder texts of a forced release: they say that details follow
// and nothing else.
const (
	placeholderTitle       = "Security issue in %s"
	placeholderDescription = "The details of this issue are not published yet; they will be added to this advisory."
)

// placeholders fills the missing title and description of a forced
// release with placeholder text (recorded in the facts, so the page
// shows the same) and returns what it filled. It cannot invent affected
// versions.
func (o *op) placeholders(a *publish.Advisory) []string {
	var filled []string
	f := &o.in.Facts
	for _, m := range a.Missing() {
		switch m {
		case "title":
			f.Title = fmt.Sprintf(placeholderTitle, orDefault(o.d.Project.Name, o.d.Domain))
			filled = append(filled, "title")
		case "description":
			f.Description = placeholderDescription
			filled = append(filled, "description")
		}
	}
	return filled
}
