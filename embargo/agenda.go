package embargo

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cvd-project/cvd/store"
)

// Due is an open incident's next deadline.
type Due struct {
	// At is when it is due; zero when the incident has no deadline.
	At       time.Time
	Incident string
	State    string
	Title    string
	// What is due, in words.
	What string
}

// open states: incidents whose work is not done.
var openStates = []string{store.IncidentNew, store.IncidentTriage, store.IncidentConfirmed, store.IncidentFixing, store.IncidentPrenotified}

// Agenda returns every open incident's next deadline, soonest first;
// incidents without one come last.
func (d *Desk) Agenda(ctx context.Context) ([]Due, error) {
	var out []Due
	err := d.DB.Read(ctx, func(tx *sql.Tx) (err error) {
		out, err = d.agendaTx(ctx, tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("agenda: %w", err)
	}
	return out, nil
}

func (d *Desk) agendaTx(ctx context.Context, tx *sql.Tx) ([]Due, error) {
	ins, err := store.IncidentsTx(ctx, tx, openStates...)
	if err != nil {
		return nil, err
	}
	var out []Due
	for _, si := range ins {
		in, err := decode(si)
		if err != nil {
			return nil, err
		}
		due, err := d.nextDue(ctx, tx, in)
		if err != nil {
			return nil, err
		}
		out = append(out, due)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].At, out[j].At
		switch {
		case a.IsZero() || b.IsZero():
			return !a.IsZero() && b.IsZero()
		case !a.Equal(b):
			return a.Before(b)
		}
		return out[i].Incident < out[j].Incident
	})
	return out, nil
}

// nextDue is what in waits for next, and when.
func (d *Desk) nextDue(ctx context.Context, tx *sql.Tx, in *Incident) (Due, error) {
	due := Due{Incident: in.ID, State: in.State, Title: in.Facts.Title}
	switch in.State {
	case store.IncidentNew:
		due.At = in.CreatedAt.Add(d.Policy.AckEscalation)
		due.What = "escalation: nobody of the team has taken the report"
		if !in.EscalatedAt.IsZero() {
			due.At = in.EscalatedAt
			due.What = "escalated: nobody of the team has taken the report"
		}
	case store.IncidentPrenotified:
		if in.Facts.ReleaseHeld != "" {
			due.At, due.What = in.EmbargoAt, "release HELD: the public advisory lacks "+in.Facts.ReleaseHeld
			return due, nil
		}
		due.At, due.What = in.EmbargoAt, "release at the public date"
		ds, err := store.DownstreamsTx(ctx, tx, in.ID)
		if err != nil {
			return due, err
		}
		var silent []string
		reminded := true
		for _, x := range ds {
			if x.AckedAt.IsZero() {
				silent = append(silent, orDefault(x.Name, x.Email))
				reminded = reminded && !x.RemindedAt.IsZero()
			}
		}
		if len(silent) > 0 && !reminded {
			if at := in.EmbargoAt.Add(-d.Policy.ReminderBefore); at.Before(in.EmbargoAt) {
				due.At, due.What = at, "reminder to silent downstreams: "+strings.Join(silent, ", ")
			}
		}
	default:
		switch {
		case in.EmbargoAt.IsZero() && in.Privacy == Private:
			due.What = "no public date set"
		case in.EmbargoAt.IsZero():
			due.What = "fast path: publish once a fix or work-around is recorded"
		default:
			due.At, due.What = in.EmbargoAt.Add(-d.Policy.MinNotice), "pre-notify the downstreams (the last day for "+human(d.Policy.MinNotice)+" of notice)"
		}
	}
	return due, nil
}

// WriteAgenda writes dues as the agenda table; times in UTC, past ones
// marked OVERDUE.
func WriteAgenda(w io.Writer, dues []Due, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DUE (UTC)\tINCIDENT\tSTATE\tWHAT\tTITLE")
	for _, x := range dues {
		when := "-"
		if !x.At.IsZero() {
			when = x.At.UTC().Format("2006-01-02 15:04")
			if x.At.Before(now) {
				when += " OVERDUE"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", when, x.Incident, x.State, x.What, orDefault(x.Title, "-"))
	}
	if len(dues) == 0 {
		fmt.Fprintln(tw, "(no open incident)")
	}
	return tw.Flush()
}

// WriteList writes every incident, newest first: state, CVE, when it was
// actually published, its next deadline and its title.
func (d *Desk) WriteList(ctx context.Context, w io.Writer) error {
	ins, err := d.List(ctx)
	if err != nil {
		return err
	}
	dues, err := d.Agenda(ctx)
	if err != nil {
		return err
	}
	next := map[string]Due{}
	for _, x := range dues {
		next[x.Incident] = x
	}
	now := d.now()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tPRIVACY\tCVE\tPUBLISHED (UTC)\tNEXT DEADLINE (UTC)\tTITLE")
	for _, in := range ins {
		published := "-"
		if !in.PublishedAt.IsZero() {
			published = in.PublishedAt.UTC().Format("2006-01-02 15:04")
		}
		deadline := "-"
		if x, ok := next[in.ID]; ok && !x.At.IsZero() {
			deadline = x.At.UTC().Format("2006-01-02 15:04") + " " + shortWhat(x)
			if x.At.Before(now) {
				deadline += " OVERDUE"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", in.ID, in.State, in.Privacy, orDefault(in.Facts.CVE, "-"), published, deadline, orDefault(in.Facts.Title, "-"))
	}
	return tw.Flush()
}

// shortWhat is the first words of a deadline, for the incident list.
func shortWhat(x Due) string {
	w, _, _ := strings.Cut(x.What, ":")
	w, _, _ = strings.Cut(w, " (")
	return w
}

// agendaKind is the outbound kind of the agenda mail.
const agendaKind = "agenda"

// nextAgenda is when the agenda mail is due next: AgendaEvery after the
// last one, or, before the first, after the oldest open incident was
// opened; zero when none is due (no agenda mail, or nothing open).
func (d *Desk) nextAgenda(ctx context.Context, tx *sql.Tx) (time.Time, error) {
	if d.AgendaEvery <= 0 || len(d.Team) == 0 {
		return time.Time{}, nil
	}
	last, err := store.LastQueuedTx(ctx, tx, agendaKind)
	if err != nil {
		return time.Time{}, err
	}
	ins, err := store.IncidentsTx(ctx, tx, openStates...)
	if err != nil || len(ins) == 0 {
		return time.Time{}, err
	}
	base := last
	if base.IsZero() {
		base = ins[0].CreatedAt
		for _, in := range ins {
			if in.CreatedAt.Before(base) {
				base = in.CreatedAt
			}
		}
	}
	return base.Add(d.AgendaEvery), nil
}

// agendaMail mails the agenda to the team, sealed to each member's key,
// when it is due. It reports whether it queued any.
func (d *Desk) agendaMail(ctx context.Context) (bool, error) {
	now := d.now()
	sent := 0
	err := d.DB.Write(ctx, func(tx *sql.Tx) error {
		due, err := d.nextAgenda(ctx, tx)
		if err != nil || due.IsZero() || now.Before(due) {
			return err
		}
		dues, err := d.agendaTx(ctx, tx)
		if err != nil {
			return err
		}
		var b strings.Builder
		if err := WriteAgenda(&b, dues, now); err != nil {
			return err
		}
		r, err := render("agenda", map[string]any{"Date": utc(now), "Count": len(dues), "Open": plural(len(dues), "open incident"), "Agenda": strings.TrimRight(b.String(), "\n"),
			"Every": human(d.AgendaEvery)})
		if err != nil {
			return err
		}
		sent, err = d.sealToTeamWithTx(ctx, tx, agendaKind, "agenda", r.Subject, r.Body, nil, "")
		return err
	})
	if err != nil {
		return false, fmt.Errorf("agenda mail: %w", err)
	}
	if sent == 0 {
		return false, nil
	}
	d.log().Info("agenda mailed to the team", "team", sent)
	return true, nil
}
