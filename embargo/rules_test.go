package embargo_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/store"
)

func TestParseDate(t *testing.T) {
	want := time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	for _, s := range []string{"2026-12-03T14:00Z", "2026-12-03T14:00:00Z", "2026-12-03 14:00 UTC", "2026-12-03T15:00+01:00", "2026-12-03 14:00Z"} {
		got, err := embargo.ParseDate(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseDate(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"2026-12-03 14:00", "tomorrow", "2026-12-03"} {
		if _, err := embargo.ParseDate(s); err == nil || !strings.Contains(err.Error(), "UTC") {
			t.Errorf("ParseDate(%q) accepted or unclear: %v", s, err)
		}
	}
}

func TestProposeDate(t *testing.T) {
	p := embargo.DefaultPolicy()
	for now, want := range map[string]string{
		"2026-11-23T09:00:00Z": "2026-11-25T10:00:00Z", // Monday 9:00 -> Wednesday 10:00
		"2026-11-23T11:00:00Z": "2026-11-26T10:00:00Z", // Monday 11:00: Wednesday 10:00 is < 48h -> Thursday
		"2026-11-25T08:00:00Z": "2026-11-30T10:00:00Z", // Wednesday: Friday and the weekend skipped
		"2026-11-27T16:00:00Z": "2026-11-30T10:00:00Z", // Friday afternoon -> Monday
	} {
		n, _ := time.Parse(time.RFC3339, now)
		got := p.Propose(n)
		if got.Format(time.RFC3339) != want {
			t.Errorf("Propose(%s) = %s, want %s", now, got.Format(time.RFC3339), want)
		}
		if got.Sub(n) < p.MinNotice {
			t.Errorf("Propose(%s) gives less than the minimum notice", now)
		}
	}
}

// confirmed opens an incident by CLI-free intake and confirms it.
func (w *world) confirmed(privacy string) string {
	w.t.Helper()
	w.deliver("rita@reporter.example", "security@"+domain,
		"From: Rita <rita@reporter.example>\r\nTo: security@example.org\r\nSubject: bug\r\nMessage-ID: <r"+time.Now().Format("150405.000000000")+"@reporter.example>\r\n\r\nhello\r\n")
	ins, err := w.desk.List(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	id := ins[len(ins)-1].ID
	w.mustDo(id, func(p *embargo.Op) error { return p.Confirm(privacy) })
	return id
}

// TestEmbargoRules: the 48-hour and 14-day rules refuse bad dates with a
// message that says what to do, and change nothing.
func TestEmbargoRules(t *testing.T) {
	w := newWorld(t)
	debian := w.person("Debian Security", "team@security.debian.example")
	w.addRoster(debian)
	id := w.confirmed(embargo.Private)
	now := w.clock.Now()

	refused := func(date time.Time, override string, wants ...string) {
		t.Helper()
		_, err := w.do(id, func(p *embargo.Op) error { return p.SetEmbargo(date, override) })
		if err == nil || !embargo.IsRefusal(err) {
			t.Fatalf("date %s accepted (%v)", date, err)
		}
		for _, want := range wants {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("refusal of %s lacks %q: %v", date, want, err)
			}
		}
	}
	refused(now.Add(-time.Hour), "", "not in the future", "--now")
	refused(now.Add(47*time.Hour), "", "less than 48 hours", "earliest compliant date is", "UTC")
	// Notify needs a date first.
	if _, err := w.do(id, func(p *embargo.Op) error { return p.Notify(nil) }); err == nil || !strings.Contains(err.Error(), "no public date") {
		t.Errorf("notify without a date: %v", err)
	}
	// 20 days ahead is fine before the notice, but notify refuses it.
	far := now.Add(20 * 24 * time.Hour)
	out := w.mustDo(id, func(p *embargo.Op) error { return p.SetEmbargo(far, "") })
	if !strings.Contains(out, "must go out by") {
		t.Errorf("no hint about the latest notice: %s", out)
	}
	if _, err := w.do(id, func(p *embargo.Op) error { return p.Notify(nil) }); err == nil || !strings.Contains(err.Error(), "more than 14 days") ||
		!strings.Contains(err.Error(), "override") {
		t.Errorf("notify 20 days ahead: %v", err)
	}
	if n := len(find(w.queue(), "", "prenotify")); n != 0 {
		t.Fatalf("%d pre-notifications sent by a refused notify", n)
	}
	if w.incident(id).State != store.IncidentConfirmed {
		t.Fatalf("refused notify changed the state to %s", w.incident(id).State)
	}
	// A compliant date, notified; then the 14 days count from the notice.
	date := now.Add(5 * 24 * time.Hour)
	w.mustDo(id, func(p *embargo.Op) error { return p.SetEmbargo(date, "") })
	w.mustDo(id, func(p *embargo.Op) error { return p.Notify(nil) })
	w.clock.Advance(24 * time.Hour)
	refused(now.Add(15*24*time.Hour), "", "more than 14 days after the first downstream notice", now.Add(14*24*time.Hour).Format("2006-01-02 15:04 UTC"))
	refused(w.clock.Now().Add(47*time.Hour), "", "less than 48 hours")
	// Overriding the maximum takes a reason, recorded.
	n := len(w.queue())
	out = w.mustDo(id, func(p *embargo.Op) error {
		return p.SetEmbargo(now.Add(15*24*time.Hour), "hardware vendors need the extra day")
	})
	if !strings.Contains(out, "exceeds 14 days on purpose") {
		t.Errorf("override: %s", out)
	}
	in := w.incident(id)
	if in.EmbargoOverride != "hardware vendors need the extra day" {
		t.Errorf("override reason not recorded: %+v", in.Incident)
	}
	// Changing the date after the notice tells every member.
	got := w.decrypt(debian, one(t, w.since(n), debian.Email, "datechange"))
	if !strings.Contains(got, now.Add(15*24*time.Hour).Format("2006-01-02 15:04 UTC")) || !strings.Contains(got, date.Format("2006-01-02 15:04 UTC")) {
		t.Errorf("date change notice:\n%s", got)
	}
}

// TestPublicFastPath: a public issue has no embargo and publishes as soon
// as a fix or work-around is recorded.
func TestPublicFastPath(t *testing.T) {
	w := newWorld(t)
	id := w.confirmed(embargo.Public)
	if _, err := w.do(id, func(p *embargo.Op) error { return p.SetEmbargo(w.clock.Now().Add(72*time.Hour), "") }); err == nil ||
		!strings.Contains(err.Error(), "fast path") {
		t.Errorf("embargo on a public issue: %v", err)
	}
	if _, err := w.do(id, func(p *embargo.Op) error { return p.Notify(nil) }); err == nil {
		t.Error("pre-notification of a public issue")
	}
	if _, err := w.do(id, func(p *embargo.Op) error { return p.Publish(false, "", false) }); err == nil || !strings.Contains(err.Error(), "work-around") {
		t.Errorf("publish without fix: %v", err)
	}
	w.mustDo(id, func(p *embargo.Op) error { return p.Set("title", "Crash on empty input") })
	w.mustDo(id, func(p *embargo.Op) error { return p.Set("description", "An empty file crashes the parser.") })
	w.mustDo(id, func(p *embargo.Op) error { return p.Set("workaround", "Reject empty files before parsing.") })
	w.mustDo(id, func(p *embargo.Op) error { return p.Versions("libexample", "2.0", "", "") })
	out := w.mustDo(id, func(p *embargo.Op) error { return p.Publish(false, "", false) })
	if !strings.Contains(out, "published (fast path (public))") {
		t.Errorf("publish: %s", out)
	}
	q := w.queue()
	ann := one(t, q, "oss-security@lists.example.net", "announce")
	if !strings.Contains(string(ann.raw), "Reject empty files") {
		t.Errorf("announcement lacks the work-around")
	}
	if w.incident(id).State != store.IncidentPublished {
		t.Error("not published")
	}
	// The plain reporter is thanked in plain text (nothing is secret now).
	if m := one(t, q, "rita@reporter.example", "thanks"); strings.Contains(string(m.raw), "multipart/encrypted") {
		t.Error("thanks encrypted without a key")
	}
}

// TestBreakEmbargo: --now publishes at once, says so and records why.
func TestBreakEmbargo(t *testing.T) {
	w := newWorld(t)
	id := w.confirmed(embargo.Private)
	w.complete(id)
	date := w.clock.Now().Add(4 * 24 * time.Hour)
	w.mustDo(id, func(p *embargo.Op) error { return p.SetEmbargo(date, "") })
	w.mustDo(id, func(p *embargo.Op) error { return p.Notify(nil) })
	if _, err := w.do(id, func(p *embargo.Op) error { return p.Publish(false, "", false) }); err == nil || !strings.Contains(err.Error(), "embargoed until") {
		t.Errorf("early publish without --now: %v", err)
	}
	if _, err := w.do(id, func(p *embargo.Op) error { return p.Publish(true, "", false) }); err == nil || !strings.Contains(err.Error(), "reason") {
		t.Errorf("break without a reason: %v", err)
	}
	w.mustDo(id, func(p *embargo.Op) error { return p.Publish(true, "the fix was pushed to a public branch", false) })
	ann := one(t, w.queue(), "oss-security@lists.example.net", "announce")
	if !strings.Contains(string(ann.raw), "ended early (the fix was pushed to a public") {
		t.Errorf("announcement does not say the embargo was broken:\n%s", ann.raw)
	}
	w.clock.Set(date)
	if tk, _ := w.desk.RunDue(context.Background()); len(tk.Released) != 0 {
		t.Error("released again at the date")
	}
}

// TestBounceNeverOpensIncident: bounces, auto-replies and list mail to
// security@ open nothing and answer nothing.
func TestBounceNeverOpensIncident(t *testing.T) {
	w := newWorld(t)
	for _, c := range []struct{ from, raw string }{
		{"", "From: MAILER-DAEMON@mx.example\r\nTo: security@example.org\r\nSubject: Undelivered Mail Returned to Sender\r\n\r\nbounce\r\n"},
		{"rita@reporter.example", "From: rita@reporter.example\r\nTo: security@example.org\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\naway\r\n"},
		{"list-bounces@lists.example", "From: someone@lists.example\r\nTo: security@example.org\r\nSubject: digest\r\nList-Id: <x.lists.example>\r\nPrecedence: list\r\n\r\ndigest\r\n"},
		{"mailer-daemon@mx.example", "From: mailer-daemon@mx.example\r\nTo: security@example.org\r\nSubject: failure notice\r\n\r\nbounce\r\n"},
	} {
		w.deliver(c.from, "security@"+domain, c.raw)
	}
	ins, err := w.desk.List(context.Background())
	if err != nil || len(ins) != 0 {
		t.Fatalf("%d incidents opened by automatic mail (%v)", len(ins), err)
	}
	if q := w.queue(); len(q) != 0 {
		t.Errorf("automatic mail was answered: %d messages", len(q))
	}
	for id := int64(1); id <= 4; id++ {
		if s := w.spoolState(id); s != store.SpoolDone {
			t.Errorf("spool %d is %s", id, s)
		}
	}
}

// TestPlainReportAndEscalation: a plain report without a key gets a plain
// acknowledgement asking for one; nobody taking it within the escalation
// time tells the team once.
func TestPlainReportAndEscalation(t *testing.T) {
	w := newWorld(t)
	cora := w.person("Cora Coordinator", "cora@example.org")
	w.addTeam(cora)
	w.deliver("rita@reporter.example", "security@"+domain,
		"From: Rita <rita@reporter.example>\r\nTo: security@example.org\r\nSubject: bug\r\nMessage-ID: <plain-1@reporter.example>\r\n\r\n"+secret+"\r\n")
	in := w.only()
	q := w.queue()
	ack := one(t, q, "rita@reporter.example", "ack")
	if strings.Contains(string(ack.raw), "multipart/encrypted") || !strings.Contains(string(ack.raw), "We do not have an OpenPGP key") ||
		strings.Contains(string(ack.raw), "SECRET") {
		t.Errorf("plain ack:\n%s", ack.raw)
	}
	// The acknowledgement is all the reporter gets: no list receipt too.
	if r := find(q, "rita@reporter.example", "receipt"); len(r) != 0 {
		t.Errorf("the reporter got a receipt besides the acknowledgement")
	}
	// The unsigned report is held for the coordinators, encrypted.
	if got := w.decrypt(cora, one(t, q, cora.Email, "post")); !strings.Contains(got, secret) {
		t.Errorf("coordinator's copy:\n%s", got)
	}
	ctx := context.Background()
	w.clock.Advance(23 * time.Hour)
	if tk, _ := w.desk.RunDue(ctx); len(tk.Escalated) != 0 {
		t.Error("escalated early")
	}
	w.clock.Advance(time.Hour)
	if tk, err := w.desk.RunDue(ctx); err != nil || len(tk.Escalated) != 1 {
		t.Fatalf("escalation: %+v %v", tk, err)
	}
	if got := w.decrypt(cora, one(t, w.queue(), cora.Email, "escalation")); !strings.Contains(got, in.ID) {
		t.Errorf("escalation:\n%s", got)
	}
	w.clock.Advance(time.Hour)
	if tk, _ := w.desk.RunDue(ctx); len(tk.Escalated) != 0 {
		t.Error("escalated twice")
	}
	// The next year starts a new sequence.
	w.clock.Set(time.Date(w.clock.Now().Year()+1, 1, 1, 0, 5, 0, 0, time.UTC))
	w.deliver("rita@reporter.example", "security@"+domain,
		"From: Rita <rita@reporter.example>\r\nTo: security@example.org\r\nSubject: bug\r\nMessage-ID: <plain-2@reporter.example>\r\n\r\nagain\r\n")
	ins, _ := w.desk.List(ctx)
	if len(ins) != 2 || !strings.HasSuffix(ins[1].ID, "-001") || ins[1].ID == in.ID {
		t.Errorf("IDs: %s, %s", ins[0].ID, ins[len(ins)-1].ID)
	}
}
