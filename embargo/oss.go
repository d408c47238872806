package embargo

import (
	"bytes"
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/publish"
	"github.com/cvd-project/cvd/store"
)

// The public lists (oss-security) get what their rules expect: a Subject
// naming the software and the CVE, the affected and fixed versions, the
// fix, the credits, and whether and when distributions were told; for a
// public or zero-day issue a short notice at once, without waiting for a
// fix; and seven days after a release a reminder to the team to post a
// withheld exploit or reproducer.

// ExploitDelay is how long after a release the team is asked to post an
// exploit or reproducer it kept back (the distros list's rule).
const ExploitDelay = 7 * 24 * time.Hour

// externalPost renders the post to the public lists at release.
func (o *op) externalPost(a *publish.Advisory, text string, broken bool) (subject, body string, err error) {
	var patches []map[string]string
	files, err := o.files()
	if err != nil {
		return "", "", err
	}
	for _, f := range files {
		if f.ContentType != "text/x-patch" {
			continue
		}
		t := strings.ReplaceAll(string(f.data), "\r\n", "\n")
		if err := publish.CheckText(t, true); err != nil {
			o.d.log().Warn("patch not inlined in the public post", "incident", o.in.ID, "file", f.Name, "err", err)
			continue
		}
		patches = append(patches, map[string]string{"Name": f.Name, "Text": strings.TrimRight(t, "\n")})
	}
	pre := ""
	if !o.in.FirstNoticeAt.IsZero() {
		pre = utc(o.in.FirstNoticeAt)
	}
	r, err := render("oss-security", map[string]any{"ID": o.in.ID, "Project": orDefault(o.d.Project.Name, o.d.Domain), "Topic": a.Title,
		"CVE": a.CVE, "Advisory": text, "Broken": broken, "Reason": o.in.Facts.Public().BreakReason, "Patches": patches,
		"PreNotified": pre, "URL": a.PageURL(), "Intake": o.d.IntakeAddress()})
	if err != nil {
		return "", "", err
	}
	return r.Subject, r.Body, nil
}

// PublicNotice posts the short public notice of a public or zero-day
// incident to the external lists (oss-security): what is affected and
// that a fix is not there yet. The full advisory follows at release.
func (p *Op) PublicNotice() error {
	o := p.o
	if err := o.editable("public-notice"); err != nil {
		return err
	}
	if o.in.Privacy == Private {
		return refuse("incident %s is private: it stays under embargo; the public lists get the advisory at the public date", o.in.ID)
	}
	switch o.in.State {
	case store.IncidentConfirmed, store.IncidentFixing:
	case store.IncidentPublished, store.IncidentClosed:
		return refuse("incident %s is %s: the advisory is out already", o.in.ID, o.in.State)
	default:
		return refuse("incident %s is %s; confirm it first (confirm --privacy public or zero-day)", o.in.ID, o.in.State)
	}
	if len(o.d.External) == 0 {
		return refuse("no external list is configured (embargo.external, e.g. [\"oss-security@lists.openwall.com\"])")
	}
	if !o.in.Facts.PublicNoticeAt.IsZero() {
		return refuse("the public notice of %s went out on %s", o.in.ID, utc(o.in.Facts.PublicNoticeAt))
	}
	a, _ := o.d.advisory(o.in, publish.Released, o.now)
	var missing []string
	if a.Title == "" {
		missing = append(missing, "title")
	}
	if a.Description == "" {
		missing = append(missing, "description")
	}
	if len(missing) > 0 {
		return refuse("the public notice needs a %s: record it (cvd incident set %s %s TEXT)", strings.Join(missing, " and a "), o.in.ID, missing[0])
	}
	var affected []string
	for _, pk := range a.Packages {
		for _, r := range pk.Ranges {
			affected = append(affected, strings.TrimSpace(pk.Name+" from "+orDefault(r.Introduced, "the first version")))
		}
	}
	r, err := render("public-notice", map[string]any{"ID": o.in.ID, "Project": orDefault(o.d.Project.Name, o.d.Domain), "Topic": a.Title,
		"Title": a.Title, "CVE": a.CVE, "ZeroDay": o.in.Privacy == ZeroDay, "Affected": affected, "Description": a.Description,
		"Workaround": a.Workaround, "Intake": o.d.IntakeAddress()})
	if err != nil {
		return err
	}
	for _, to := range o.d.External {
		raw, err := o.d.signedAnnouncement(r.Subject, r.Body, to, o.now)
		if err != nil {
			return err
		}
		if _, err := store.EnqueueTx(o.ctx, o.tx, &store.OutMessage{Rcpts: []string{to}, Raw: raw, Origin: store.OriginNotice,
			Kind: "public-notice", Ref: o.in.ID, CreatedAt: o.now, Urgent: true}); err != nil {
			return err
		}
	}
	o.in.Facts.PublicNoticeAt = o.now
	if err := o.event("public-notice", "public notice sent to %s", strings.Join(o.d.External, ", ")); err != nil {
		return err
	}
	o.note("%s: public notice sent to %s; the full advisory follows at publish", o.in.ID, strings.Join(o.d.External, ", "))
	return o.save()
}

// exploitDue lists the published incidents whose exploit reminder is due
// (published between seven and fourteen days ago: later it no longer
// helps), and when the next one will be.
func (d *Desk) exploitDueTx(ctx context.Context, tx *sql.Tx, now time.Time) (due []string, next time.Time, err error) {
	if len(d.External) == 0 {
		return nil, time.Time{}, nil
	}
	ins, err := store.IncidentsTx(ctx, tx, store.IncidentPublished)
	if err != nil {
		return nil, time.Time{}, err
	}
	for _, in := range ins {
		at := in.PublishedAt.Add(ExploitDelay)
		if in.PublishedAt.IsZero() || bytes.Contains(in.Facts, []byte(`"exploit_reminded"`)) || now.Sub(at) > ExploitDelay {
			continue
		}
		if !now.Before(at) {
			due = append(due, in.ID)
		} else if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return due, next, nil
}

// exploitReminder asks the coordinators, once, to post a withheld
// exploit or reproducer.
func (o *op) exploitReminder() error {
	if o.in.State != store.IncidentPublished || o.in.Facts.ExploitReminded || o.now.Before(o.in.PublishedAt.Add(ExploitDelay)) {
		return nil
	}
	r, err := render("exploit-reminder", map[string]any{"ID": o.in.ID, "Date": utc(o.in.PublishedAt), "Lists": strings.Join(o.d.External, ", ")})
	if err != nil {
		return err
	}
	sent, _, err := o.sealToMembers("exploit-reminder", r, func(m recipient) bool { return m.Role == lists.RoleCoordinator })
	if err != nil {
		return err
	}
	o.in.Facts.ExploitReminded = true
	if err := o.event("exploit-reminder", "%s after the release: %d coordinators asked to post a withheld exploit or reproducer", human(ExploitDelay), len(sent)); err != nil {
		return err
	}
	return o.save()
}

// warnIncomplete tells the coordinators, once, when the reminder time
// has come and the public advisory is still incomplete.
func (o *op) warnIncomplete() error {
	if o.in.Facts.IncompleteWarned {
		return nil
	}
	a, verr := o.d.advisory(o.in, publish.Released, o.in.EmbargoAt)
	if verr == nil {
		return nil
	}
	missing := strings.Join(a.Missing(), ", ")
	if missing == "" {
		missing = verr.Error()
	}
	r, err := render("release-warning", map[string]any{"ID": o.in.ID, "Date": utc(o.in.EmbargoAt), "Missing": missing, "ListAddress": o.d.ListAddress(o.in.ID)})
	if err != nil {
		return err
	}
	sent, _, err := o.sealToMembers("release-warning", r, func(m recipient) bool { return m.Role == lists.RoleCoordinator })
	if err != nil {
		return err
	}
	o.in.Facts.IncompleteWarned = true
	if err := o.event("release-warning", "the public advisory lacks %s; %d coordinators warned", missing, len(sent)); err != nil {
		return err
	}
	return o.save()
}
