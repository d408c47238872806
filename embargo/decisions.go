package embargo

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/store"
)

// Decision topics: what the team decides to publish around the release.
const (
	TopicPatches     = "patches"      // when the fix goes to the public repository
	TopicTests       = "tests"        // when the tests that show the issue are published
	TopicExploit     = "exploit"      // when an exploit or proof of concept is published
	TopicPublicIssue = "public-issue" // the public tracker issue, opened at the release
	TopicDiscussion  = "discussion"   // when the incident's private discussion is published
)

// DecisionTopics are the topics in the order notices list them.
var DecisionTopics = []string{TopicPatches, TopicTests, TopicExploit, TopicPublicIssue, TopicDiscussion}

// Decision grace: a decision done within this much of its due time is
// kept; earlier than decisionEarly before it is "early".
const (
	decisionGrace = 24 * time.Hour
	decisionEarly = time.Hour
)

// Decision is a release decision of the team.
type Decision struct {
	Topic string `json:"topic"`
	// When is "never", "at-release", "release+DURATION" (e.g.
	// "release+7d"), or "date" with At.
	When string    `json:"when"`
	At   time.Time `json:"at,omitzero"`
	// URL is the public issue's address (public-issue).
	URL        string    `json:"url,omitempty"`
	By         string    `json:"by"`
	DecidedAt  time.Time `json:"decided_at"`
	RemindedAt time.Time `json:"reminded_at,omitzero"`
	DoneAt     time.Time `json:"done_at,omitzero"`
	DoneBy     string    `json:"done_by,omitempty"`
}

var releasePlusRE = regexp.MustCompile(`^release\+([0-9]{1,3})([dh])$`)

// offset is the delay after the release of an at-release or release+N
// decision; ok is false for the others.
func (dc *Decision) offset() (time.Duration, bool) {
	if dc.When == "at-release" {
		return 0, true
	}
	m := releasePlusRE.FindStringSubmatch(dc.When)
	if m == nil {
		return 0, false
	}
	n, _ := strconv.Atoi(m[1])
	if m[2] == "d" {
		return time.Duration(n) * 24 * time.Hour, true
	}
	return time.Duration(n) * time.Hour, true
}

// Due returns when the decision is due: its date, or its delay after the
// release once the incident is released; zero for "never" and for a
// release not yet made.
func (dc *Decision) Due(in *Incident) time.Time {
	if dc.When == "date" {
		return dc.At
	}
	if off, ok := dc.offset(); ok && !in.PublishedAt.IsZero() {
		return in.PublishedAt.Add(off)
	}
	return time.Time{}
}

// Words says the decision as downstreams read it, with the expected time
// when the release is not made yet.
func (dc *Decision) Words(in *Incident) string {
	var s string
	switch dc.When {
	case "never":
		s = "never published"
	case "date":
		s = "public on " + utc(dc.At)
	case "at-release":
		s = "public at the release"
	case "":
		s = "no time decided"
	default:
		off, _ := dc.offset()
		s = "public " + human(off) + " after the release"
		if due := dc.Due(in); !due.IsZero() {
			s += " (" + utc(due) + ")"
		} else if !in.EmbargoAt.IsZero() {
			s += " (" + utc(in.EmbargoAt.Add(off)) + " if released on the public date)"
		}
	}
	if dc.URL != "" {
		s = dc.URL + ", " + s
	}
	return s
}

// Kept says whether the decision was kept, as of now.
func (dc *Decision) Kept(in *Incident, now time.Time) string {
	due := dc.Due(in)
	switch {
	case !dc.DoneAt.IsZero() && dc.When == "never":
		return "NOT KEPT: decided never, done " + utc(dc.DoneAt)
	case !dc.DoneAt.IsZero() && due.IsZero() && in.PublishedAt.IsZero() && dc.When != "":
		return "NOT KEPT: done " + utc(dc.DoneAt) + ", before the release"
	case !dc.DoneAt.IsZero() && !due.IsZero() && dc.DoneAt.Before(due.Add(-decisionEarly)):
		return "NOT KEPT: done " + utc(dc.DoneAt) + ", early (due " + utc(due) + ")"
	case !dc.DoneAt.IsZero() && !due.IsZero() && dc.DoneAt.After(due.Add(decisionGrace)):
		return "NOT KEPT: done " + utc(dc.DoneAt) + ", late by " + dur(dc.DoneAt.Sub(due)) + " (due " + utc(due) + ")"
	case !dc.DoneAt.IsZero():
		return "kept: done " + utc(dc.DoneAt)
	case dc.When == "never" && !in.PublishedAt.IsZero():
		return "kept (not published)"
	case due.IsZero():
		return "pending"
	case now.Before(due):
		return "pending: due " + utc(due)
	}
	s := "NOT KEPT: due " + utc(due) + ", not recorded as done"
	if !dc.RemindedAt.IsZero() {
		s += " (team reminded " + utc(dc.RemindedAt) + ")"
	}
	return s
}

// Decide records release decisions, "TOPIC=VALUE" each: VALUE is
// at-release, release+Nd (or +Nh), never, a UTC date, or done (it
// happened now); public-issue takes the issue's URL. Decisions made after
// the pre-notification are told to every member.
func (p *Op) Decide(pairs []string) error {
	o := p.o
	if len(pairs) == 0 {
		return refuse("decide: give TOPIC=VALUE, e.g. 'patches=at-release exploit=release+7d public-issue=https://...'; topics: %s",
			strings.Join(DecisionTopics, ", "))
	}
	type change struct {
		topic, value string
		dc           Decision
		done         bool
	}
	var cs []change
	for _, kv := range pairs {
		topic, value, ok := strings.Cut(strings.TrimSpace(kv), "=")
		topic, value = strings.ToLower(strings.TrimSpace(topic)), strings.TrimSpace(value)
		if !ok || !slices.Contains(DecisionTopics, topic) {
			return refuse("decide: %q: use TOPIC=VALUE with a topic of %s", kv, strings.Join(DecisionTopics, ", "))
		}
		if err := checkText(topic, value, false); err != nil {
			return err
		}
		c := change{topic: topic, value: value, dc: Decision{Topic: topic, By: o.actor.Who, DecidedAt: o.now}}
		lv := strings.ToLower(value)
		switch {
		case lv == "done":
			c.done = true
		case lv == "never" || lv == "at-release":
			c.dc.When = lv
		case releasePlusRE.MatchString(lv):
			c.dc.When = lv
		case topic == TopicPublicIssue:
			if !strings.HasPrefix(value, "https://") && !strings.HasPrefix(value, "http://") || strings.ContainsAny(value, " \t") {
				return refuse("decide: public-issue=%q: give the issue's http(s) URL, or never or done", value)
			}
			c.dc.URL, c.dc.When = value, "at-release"
		default:
			t, err := ParseDate(value)
			if err != nil {
				if d, derr := time.Parse(time.DateOnly, value); derr == nil {
					t, err = d.Add(time.Duration(o.d.Policy.ReleaseHour)*time.Hour), nil
				}
			}
			if err != nil {
				return refuse("decide: %s=%q: use at-release, release+7d, never, done or a UTC date like 2026-12-10T10:00Z", topic, value)
			}
			c.dc.When, c.dc.At = "date", t
		}
		cs = append(cs, c)
	}
	// Decisions outlive the incident's closing: an exploit may be due
	// weeks after the release.
	if err := o.coordinator("decide"); err != nil {
		return err
	}
	if err := o.take(); err != nil {
		return err
	}
	var told []string
	for _, c := range cs {
		i := slices.IndexFunc(o.in.Facts.Decisions, func(x Decision) bool { return x.Topic == c.topic })
		if c.done {
			if i < 0 {
				o.in.Facts.Decisions = append(o.in.Facts.Decisions, Decision{Topic: c.topic, By: o.actor.Who, DecidedAt: o.now})
				i = len(o.in.Facts.Decisions) - 1
			}
			dc := &o.in.Facts.Decisions[i]
			dc.DoneAt, dc.DoneBy = o.now, o.actor.Who
			if err := o.event("decision", "%s done", c.topic); err != nil {
				return err
			}
			o.note("%s: %s recorded as done: %s", o.in.ID, c.topic, dc.Kept(o.in, o.now))
			continue
		}
		if i >= 0 {
			o.in.Facts.Decisions[i] = c.dc
		} else {
			o.in.Facts.Decisions = append(o.in.Facts.Decisions, c.dc)
		}
		words := c.dc.Words(o.in)
		if err := o.event("decision", "%s: %s", c.topic, words); err != nil {
			return err
		}
		o.note("%s: %s %s", o.in.ID, decisionLabel(c.topic), words)
		told = append(told, fmt.Sprintf("%-13s %s", decisionLabel(c.topic)+":", words))
		if c.dc.When == "date" && c.topic != TopicDiscussion && o.in.PublishedAt.IsZero() && !o.in.EmbargoAt.IsZero() && c.dc.At.Before(o.in.EmbargoAt) {
			o.note("warning: %s public on %s, before the public date %s: a public fix or exploit makes the issue public and ends the embargo",
				c.topic, utc(c.dc.At), utc(o.in.EmbargoAt))
		}
		if !c.dc.At.IsZero() && !c.dc.At.After(o.now) {
			o.note("warning: %s is due already (%s)", c.topic, utc(c.dc.At))
		}
	}
	if len(told) > 0 && o.in.State == store.IncidentPrenotified {
		r, err := render("decision", map[string]any{"ID": o.in.ID, "Prefix": o.d.Policy.SubjectPrefix, "Date": utc(o.in.EmbargoAt),
			"ListAddress": o.d.ListAddress(o.in.ID), "Decisions": strings.Join(told, "\n")})
		if err != nil {
			return err
		}
		sent, _, err := o.sealToMembers("decision", r, nil)
		if err != nil {
			return err
		}
		o.note("the decision was sent to %d members", len(sent))
	}
	return o.save()
}

func decisionLabel(topic string) string {
	switch topic {
	case TopicPublicIssue:
		return "Public issue"
	case TopicTests:
		return "Tests"
	}
	return strings.ToUpper(topic[:1]) + topic[1:]
}

// decisionsText is the decisions as lines of a notice ("" when none).
func decisionsText(in *Incident) string {
	var b strings.Builder
	for _, t := range DecisionTopics {
		for _, dc := range in.Facts.Decisions {
			if dc.Topic == t && dc.When != "" {
				fmt.Fprintf(&b, "%-12s %s\n", decisionLabel(t)+":", dc.Words(in))
			}
		}
	}
	return b.String()
}

// WriteDecisions writes the incident's decisions with their state, for
// 'incident show' and the post-mortem.
func (d *Desk) WriteDecisions(w io.Writer, in *Incident) {
	if len(in.Facts.Decisions) == 0 {
		return
	}
	fmt.Fprintln(w, "Release decisions:")
	now := d.now()
	for _, dc := range in.Facts.Decisions {
		when := dc.Words(in)
		if dc.When == "" {
			when = "-"
		}
		fmt.Fprintf(w, "  %-13s %s; decided by %s %s; %s\n", decisionLabel(dc.Topic)+":", when, dc.By,
			dc.DecidedAt.Format("2006-01-02 15:04"), dc.Kept(in, now))
	}
}

// dueDecisions returns the indexes of in's decisions due at now that are
// neither done nor reminded.
func dueDecisions(in *Incident, now time.Time) []int {
	var out []int
	for i, dc := range in.Facts.Decisions {
		if due := dc.Due(in); !due.IsZero() && !now.Before(due) && dc.DoneAt.IsZero() && dc.RemindedAt.IsZero() {
			out = append(out, i)
		}
	}
	return out
}

// withDecisions returns the incidents that have decisions.
func (d *Desk) withDecisions(ctx context.Context, tx *sql.Tx) ([]*Incident, error) {
	all, err := store.IncidentsTx(ctx, tx)
	if err != nil {
		return nil, err
	}
	var out []*Incident
	for _, si := range all {
		if !bytes.Contains(si.Facts, []byte(`"decisions"`)) {
			continue
		}
		in, err := decode(si)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

// nextDecisionDue is when the next decision reminder is due.
func (d *Desk) nextDecisionDue(ctx context.Context, tx *sql.Tx) (time.Time, error) {
	ins, err := d.withDecisions(ctx, tx)
	if err != nil {
		return time.Time{}, err
	}
	var next time.Time
	for _, in := range ins {
		for _, dc := range in.Facts.Decisions {
			if due := dc.Due(in); !due.IsZero() && dc.DoneAt.IsZero() && dc.RemindedAt.IsZero() && (next.IsZero() || due.Before(next)) {
				next = due
			}
		}
	}
	return next, nil
}

// remindDecisions reminds the team of every decision that came due, once
// (scheduler pass); it returns how many incidents' teams were reminded.
func (d *Desk) remindDecisions(ctx context.Context) (int, error) {
	var ins []*Incident
	if err := d.DB.Read(ctx, func(tx *sql.Tx) (err error) {
		ins, err = d.withDecisions(ctx, tx)
		return err
	}); err != nil {
		return 0, fmt.Errorf("scheduler: decisions: %w", err)
	}
	n := 0
	for _, in := range ins {
		if len(dueDecisions(in, d.now())) == 0 {
			continue
		}
		o, err := d.writeOp(ctx, in.ID, func(o *op) error { return o.remindDecisions() })
		if err != nil {
			return n, err
		}
		n += o.reminded
	}
	return n, nil
}

// remindDecisions tells the coordinators, sealed to each, which decisions
// are due now.
func (o *op) remindDecisions() error {
	due := dueDecisions(o.in, o.now)
	if len(due) == 0 {
		return nil
	}
	var lines, topics []string
	for _, i := range due {
		dc := &o.in.Facts.Decisions[i]
		lines = append(lines, fmt.Sprintf("%-13s %s (due %s)", decisionLabel(dc.Topic)+":", dc.Words(o.in), utc(dc.Due(o.in))))
		topics = append(topics, dc.Topic)
		dc.RemindedAt = o.now
	}
	r, err := render("decision-due", map[string]any{"ID": o.in.ID, "ListAddress": o.d.ListAddress(o.in.ID),
		"Topics": strings.Join(topics, ", "), "Decisions": strings.Join(lines, "\n")})
	if err != nil {
		return err
	}
	sent, missed, err := o.sealToMembers("decision-due", r, func(m recipient) bool { return m.Role == lists.RoleCoordinator })
	if err != nil {
		return err
	}
	if len(sent) == 0 {
		o.d.log().Warn("release decision due and no coordinator to tell", "incident", o.in.ID, "without_key", len(missed))
	}
	o.reminded = 1
	if err := o.event("decision", "due: %s; %d coordinators reminded", strings.Join(topics, ", "), len(sent)); err != nil {
		return err
	}
	return o.save()
}
