package embargo

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/publish"
	"github.com/cvd-project/cvd/store"
)

// The scheduler keeps no timetable of its own: every deadline follows from
// the incidents' persistent state (the public date of a pre-notified
// incident, a silent downstream, a report nobody took), so a restart
// finds every deadline missed while cvd was down and nothing can be
// scheduled twice.

// Tick reports what one scheduler pass did.
type Tick struct {
	Released    []string
	Reminded    int
	Escalated   []string
	AckedByPost int
	// Digests is 1 when a triage digest went to the team.
	Digests int
	// Agendas is 1 when the agenda went to the team.
	Agendas int
}

// RunDue does everything due at the desk's clock: releases (each in its
// own transaction), reminders to silent downstreams, escalations of
// reports nobody took. It never releases before the public date.
func (d *Desk) RunDue(ctx context.Context) (Tick, error) {
	var t Tick
	var active []*store.Incident
	err := d.DB.Read(ctx, func(tx *sql.Tx) (err error) {
		active, err = store.IncidentsTx(ctx, tx, store.IncidentNew, store.IncidentPrenotified)
		return err
	})
	if err != nil {
		return t, fmt.Errorf("scheduler: %w", err)
	}
	var errs []error
	for _, in := range active {
		now := d.now()
		switch {
		case in.State == store.IncidentPrenotified && !now.Before(in.EmbargoAt) && d.held(in):
		case in.State == store.IncidentPrenotified && !now.Before(in.EmbargoAt):
			o, err := d.writeOp(ctx, in.ID, func(o *op) error { return o.scheduledRelease() })
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if o.released {
				t.Released = append(t.Released, in.ID)
			}
		case in.State == store.IncidentPrenotified:
			o, err := d.writeOp(ctx, in.ID, func(o *op) error { return o.remind() })
			if err != nil {
				errs = append(errs, err)
				continue
			}
			t.Reminded += o.reminded
			t.AckedByPost += o.ackedByPost
		case in.State == store.IncidentNew && in.EscalatedAt.IsZero() && d.Policy.AckEscalation > 0 &&
			!now.Before(in.CreatedAt.Add(d.Policy.AckEscalation)):
			if _, err := d.writeOp(ctx, in.ID, func(o *op) error { return o.escalate() }); err != nil {
				errs = append(errs, err)
				continue
			}
			t.Escalated = append(t.Escalated, in.ID)
		}
	}
	if n, err := d.remindDecisions(ctx); err != nil {
		errs = append(errs, err)
	} else {
		t.Reminded += n
	}
	var due []string
	if err := d.DB.Read(ctx, func(tx *sql.Tx) (err error) {
		due, _, err = d.exploitDueTx(ctx, tx, d.now())
		return err
	}); err != nil {
		errs = append(errs, err)
	} else {
		for _, id := range due {
			if _, err := d.writeOp(ctx, id, func(o *op) error { return o.exploitReminder() }); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if ok, err := d.triageDigest(ctx); err != nil {
		errs = append(errs, err)
	} else if ok {
		t.Digests++
	}
	if _, err := d.warnExpiringKeys(ctx); err != nil {
		errs = append(errs, err)
	}
	if ok, err := d.agendaMail(ctx); err != nil {
		errs = append(errs, err)
	} else if ok {
		t.Agendas++
	}
	return t, errors.Join(errs...)
}

// writeOp runs fn as cvd on incident id in its own transaction.
func (d *Desk) writeOp(ctx context.Context, id string, fn func(o *op) error) (*op, error) {
	var o *op
	err := d.DB.Write(ctx, func(tx *sql.Tx) error {
		var err error
		if o, err = d.beginOp(ctx, tx, id, System); err != nil {
			return err
		}
		return fn(o)
	})
	if err != nil {
		return nil, fmt.Errorf("scheduler: incident %s: %w", id, err)
	}
	d.afterCommit(o)
	return o, nil
}

// scheduledRelease releases a pre-notified incident whose date has come;
// it re-checks both inside the transaction, so a release already done (by
// another process, or before a restart) or a date moved meanwhile is
// left alone. An incomplete public advisory is never released by the
// scheduler: the release is held, the coordinators are told once what is
// missing, and the next pass after it is complete releases it.
func (o *op) scheduledRelease() error {
	if o.in.State != store.IncidentPrenotified || o.in.EmbargoAt.IsZero() || o.now.Before(o.in.EmbargoAt) {
		return nil
	}
	a, err := o.d.advisory(o.in, publish.Released, o.now)
	if err != nil {
		return o.hold(a, err)
	}
	return o.release("embargo ended "+utc(o.in.EmbargoAt), false, false)
}

// hold records that the release waits for a complete advisory and tells
// the coordinators, once.
func (o *op) hold(a *publish.Advisory, verr error) error {
	missing := strings.Join(a.Missing(), ", ")
	if missing == "" {
		missing = verr.Error()
	}
	if o.in.Facts.ReleaseHeld == missing {
		return nil
	}
	o.in.Facts.ReleaseHeld = missing
	o.d.log().Error("release held at the public date: the public advisory is incomplete", "incident", o.in.ID, "missing", missing)
	r, err := render("release-held", map[string]any{"ID": o.in.ID, "Date": utc(o.in.EmbargoAt), "Missing": missing, "ListAddress": o.d.ListAddress(o.in.ID)})
	if err != nil {
		return err
	}
	sent, missed, err := o.sealToMembers("release-held", r, func(m recipient) bool { return m.Role == lists.RoleCoordinator })
	if err != nil {
		return err
	}
	if len(sent) == 0 {
		o.d.log().Error("release held and no coordinator could be told", "incident", o.in.ID, "without_key", len(missed))
	}
	if err := o.event("held", "release held at the public date, the public advisory lacks: %s; %d coordinators told", missing, len(sent)); err != nil {
		return err
	}
	return o.save()
}

// held reports whether the scheduler holds in's release and its advisory
// is still incomplete (nothing to do until the team completes it).
func (d *Desk) held(in *store.Incident) bool {
	if in.State != store.IncidentPrenotified || !bytes.Contains(in.Facts, []byte(`"release_held"`)) {
		return false
	}
	x, err := decode(in)
	if err != nil || x.Facts.ReleaseHeld == "" {
		return false
	}
	_, err = d.advisory(x, publish.Released, d.now())
	return err != nil
}

// remind records acknowledgements by reply and reminds the downstreams
// still silent ReminderBefore the date.
func (o *op) remind() error {
	n, err := replyAcksTx(o.ctx, o.tx, o.in.ID, o.now)
	if err != nil {
		return err
	}
	o.ackedByPost = n
	if o.in.State != store.IncidentPrenotified || o.now.Before(o.in.EmbargoAt.Add(-o.d.Policy.ReminderBefore)) || !o.now.Before(o.in.EmbargoAt) {
		return nil
	}
	if err := o.warnIncomplete(); err != nil {
		return err
	}
	ds, err := store.DownstreamsTx(o.ctx, o.tx, o.in.ID)
	if err != nil {
		return err
	}
	var reminded []string
	for _, ds := range ds {
		if !ds.AckedAt.IsZero() || !ds.RemindedAt.IsZero() || o.d.rosterList(ds.Email) != nil {
			continue
		}
		r, err := render("reminder", map[string]any{"ID": o.in.ID, "Prefix": o.d.Policy.SubjectPrefix, "Date": utc(o.in.EmbargoAt),
			"ListAddress": o.d.ListAddress(o.in.ID), "Email": ds.Email, "Notified": utc(ds.NotifiedAt), "Fingerprint": o.d.Key.Fingerprint()})
		if err != nil {
			return err
		}
		ok, problem, err := o.sendOne("reminder", ds.Email, r, store.OriginNotice, false, "")
		if err != nil {
			return err
		}
		if !ok {
			o.d.log().Warn("downstream not reminded", "incident", o.in.ID, "email", ds.Email, "reason", problem)
		}
		if err := store.SetDownstreamRemindedTx(o.ctx, o.tx, o.in.ID, ds.Email, o.now); err != nil {
			return err
		}
		reminded = append(reminded, ds.Email)
	}
	if len(reminded) > 0 {
		o.reminded = len(reminded)
		return o.event("reminder", "silent downstreams reminded: %s", strings.Join(reminded, ", "))
	}
	return nil
}

// escalate tells the coordinators that a report has waited too long.
func (o *op) escalate() error {
	if o.in.State != store.IncidentNew || !o.in.EscalatedAt.IsZero() {
		return nil
	}
	r, err := render("escalation", map[string]any{"ID": o.in.ID, "ListAddress": o.d.ListAddress(o.in.ID),
		"Age": human(o.now.Sub(o.in.CreatedAt).Truncate(time.Hour)), "Received": utc(o.in.CreatedAt), "Fingerprint": o.d.Key.Fingerprint()})
	if err != nil {
		return err
	}
	sent, missed, err := o.sealToMembers("escalation", r, func(m recipient) bool { return m.Role == lists.RoleCoordinator })
	if err != nil {
		return err
	}
	if len(sent) == 0 {
		o.d.log().Warn("report not taken and no coordinator to tell", "incident", o.in.ID, "without_key", len(missed))
	}
	o.in.EscalatedAt = o.now
	if err := o.event("escalation", "not acknowledged by the team after %s; %d coordinators told", human(o.d.Policy.AckEscalation), len(sent)); err != nil {
		return err
	}
	return o.save()
}

// NextDue returns when something will next be due (zero: nothing is).
func (d *Desk) NextDue(ctx context.Context) (time.Time, error) {
	var next time.Time
	earlier := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	err := d.DB.Read(ctx, func(tx *sql.Tx) error {
		if _, ex, err := d.exploitDueTx(ctx, tx, d.now()); err != nil {
			return err
		} else {
			earlier(ex)
		}
		dg, err := d.nextDigest(ctx, tx)
		if err != nil {
			return err
		}
		earlier(dg)
		dd, err := d.nextDecisionDue(ctx, tx)
		if err != nil {
			return err
		}
		earlier(dd)
		if ag, err := d.nextAgenda(ctx, tx); err != nil {
			return err
		} else if ag.After(d.now()) {
			earlier(ag)
		}
		ins, err := store.IncidentsTx(ctx, tx, store.IncidentNew, store.IncidentPrenotified)
		if err != nil {
			return err
		}
		for _, in := range ins {
			switch in.State {
			case store.IncidentNew:
				if in.EscalatedAt.IsZero() && d.Policy.AckEscalation > 0 {
					earlier(in.CreatedAt.Add(d.Policy.AckEscalation))
				}
			case store.IncidentPrenotified:
				if d.held(in) {
					continue
				}
				earlier(in.EmbargoAt)
				ds, err := store.DownstreamsTx(ctx, tx, in.ID)
				if err != nil {
					return err
				}
				for _, ds := range ds {
					if ds.AckedAt.IsZero() && ds.RemindedAt.IsZero() && d.rosterList(ds.Email) == nil {
						earlier(in.EmbargoAt.Add(-d.Policy.ReminderBefore))
						break
					}
				}
			}
		}
		return nil
	})
	return next, err
}

// Scheduler runs the desk's deadlines until its context ends.
type Scheduler struct {
	Desk *Desk
	// Poll bounds the sleep between passes (default 30s), so changes made
	// by the CLI in another process are seen.
	Poll time.Duration
	// Done, when set, is called after a pass queued mail (e.g. to wake the
	// delivery worker).
	Done func()
	wake chan struct{}
}

// NewScheduler returns a scheduler for d.
func NewScheduler(d *Desk) *Scheduler {
	return &Scheduler{Desk: d, wake: make(chan struct{}, 1)}
}

// Wake makes Run look at the deadlines now.
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run runs passes until ctx ends: at once (catching up on anything
// missed while cvd was down), then at each next deadline.
func (s *Scheduler) Run(ctx context.Context) {
	poll := s.Poll
	if poll <= 0 {
		poll = 30 * time.Second
	}
	log := s.Desk.log()
	for {
		t, err := s.Desk.RunDue(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error("scheduler", "err", err)
		}
		if len(t.Released)+t.Reminded+len(t.Escalated)+t.Digests+t.Agendas > 0 {
			log.Info("scheduler", "released", strings.Join(t.Released, ","), "reminded", t.Reminded, "escalated", len(t.Escalated), "triage_digests", t.Digests)
			if s.Done != nil {
				s.Done()
			}
		}
		wait := poll
		if next, nerr := s.Desk.NextDue(ctx); err == nil && nerr == nil && !next.IsZero() {
			wait = min(poll, max(next.Sub(s.Desk.now()), 0)+10*time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-time.After(wait):
		}
	}
}
