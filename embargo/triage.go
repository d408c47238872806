package embargo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/cvd-project/cvd/store"
)

// IntakePolicy decides which new reports open an incident. A report over
// a limit, or scored as spam, waits in the triage queue instead: no
// incident, no list post, no automatic reply; the team gets a sealed
// digest of what waits, at most one per DigestEvery. Replies into an
// existing incident's thread are not new reports and are never held.
// The zero policy opens an incident for every report.
type IntakePolicy struct {
	// PerSender is how many reports from one sender (the From address)
	// may open an incident per Window; 0 is no limit.
	PerSender int
	// PerNetwork is the same for one source network (the client's IPv4
	// /IPv4Prefix or IPv6 /IPv6Prefix); loopback clients (cvd behind a
	// local MTA, the embedded default) are not counted.
	PerNetwork int
	Window     time.Duration
	IPv4Prefix int
	IPv6Prefix int
	// DigestEvery is the least time between two triage digests (1h).
	DigestEvery time.Duration
	// Spam, when set, scores a new report within the limits; spam true
	// sends it to triage. An error lets the report through (logged): a
	// filter that is down must not lose reports.
	Spam func(ctx context.Context, sm *store.SpooledMessage) (score float64, spam bool, err error)
}

// DefaultIntakePolicy is 3 incidents per hour per sender and 10 per hour
// per /24 (IPv4) or /64 (IPv6), with a digest at most hourly.
func DefaultIntakePolicy() IntakePolicy {
	return IntakePolicy{PerSender: 3, PerNetwork: 10, Window: time.Hour, IPv4Prefix: 24, IPv6Prefix: 64, DigestEvery: time.Hour}
}

// network is the source network counted for the client at addr ("" for
// loopback or an unreadable address).
func (p *IntakePolicy) network(addr string) string {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsLoopback() {
		return ""
	}
	if v4 := ip.To4(); v4 != nil {
		bits := min(max(p.IPv4Prefix, 8), 32)
		n := &net.IPNet{IP: v4.Mask(net.CIDRMask(bits, 32)), Mask: net.CIDRMask(bits, 32)}
		return n.String()
	}
	bits := min(max(p.IPv6Prefix, 16), 128)
	n := &net.IPNet{IP: ip.Mask(net.CIDRMask(bits, 128)), Mask: net.CIDRMask(bits, 128)}
	return n.String()
}

// sender is the address a report counts against: its From address (the
// envelope sender when From has none), marked when the message
// authenticated, so forged mail never uses up a real sender's limit.
func (d *Desk) sender(sm *store.SpooledMessage, h textproto.Header) string {
	addr := strings.ToLower(strings.TrimSpace(sm.MailFrom))
	if from, err := mail.ParseAddress(h.Get("From")); err == nil && strings.Contains(from.Address, "@") {
		addr = strings.ToLower(from.Address)
	}
	authenticated := sm.Auth.AuthenticatedFor(addr)
	if d.Authenticated != nil {
		authenticated = d.Authenticated(sm)
	}
	if authenticated {
		return "authenticated:" + addr
	}
	return addr
}

// admit applies the intake policy to a new report: it returns true when
// the report may open an incident, with what records it for the limits
// (run in the transaction that opens the incident), false when it went to
// the triage queue (the spool row is then done, or pending until
// FlushTriage with DeferTriage).
func (d *Desk) admit(ctx context.Context, sm *store.SpooledMessage, rcpt string, h textproto.Header) (bool, func(context.Context, *sql.Tx) error, error) {
	p := &d.IntakePolicy
	if p.PerSender <= 0 && p.PerNetwork <= 0 && p.Spam == nil {
		return true, nil, nil
	}
	now := d.now()
	sender, network := d.sender(sm, h), p.network(sm.RemoteAddr)
	window := p.Window
	if window <= 0 {
		window = time.Hour
	}
	var bySender, byNetwork int
	err := d.DB.Read(ctx, func(tx *sql.Tx) (err error) {
		bySender, byNetwork, err = store.IntakeRateTx(ctx, tx, sm.ID, sender, network, now.Add(-window))
		return err
	})
	if err != nil {
		return false, nil, err
	}
	t := &store.Triaged{SpoolID: sm.ID, Rcpt: rcpt, ReceivedAt: sm.ReceivedAt, Sender: strings.TrimPrefix(sender, "authenticated:"),
		Source: sm.RemoteAddr, Subject: decodeSubject(h.Get("Subject")), Size: int64(len(sm.Raw))}
	switch {
	case p.PerSender > 0 && bySender >= p.PerSender:
		t.Reason = fmt.Sprintf("sender over its limit (%d reports per %s)", p.PerSender, human(window))
	case p.PerNetwork > 0 && network != "" && byNetwork >= p.PerNetwork:
		t.Reason = fmt.Sprintf("source network %s over its limit (%d reports per %s)", network, p.PerNetwork, human(window))
	case p.Spam != nil:
		score, spam, err := p.Spam(ctx, sm)
		if err != nil {
			d.log().Warn("spam filter failed: report let through", "spool", sm.ID, "err", err)
			break
		}
		if spam {
			t.Reason = "spam filter score " + strconv.FormatFloat(score, 'f', 2, 64)
			t.Score, t.HasScore = score, true
		}
	}
	if t.Reason == "" {
		return true, func(ctx context.Context, tx *sql.Tx) error {
			return store.AddIntakeRateTx(ctx, tx, sm.ID, now, sender, network, now.Add(-window))
		}, nil
	}
	d.log().Info("report held in triage", "spool", sm.ID, "reason", t.Reason)
	if d.DeferTriage {
		// Written with the batch (FlushTriage): a held report changes no
		// count, and until it is written its spool row stays pending and
		// is routed again after a crash, to the same decision.
		d.triageMu.Lock()
		d.triageBuf = append(d.triageBuf, t)
		d.triageMu.Unlock()
		return false, nil, nil
	}
	return false, nil, d.writeTriage(ctx, []*store.Triaged{t})
}

// FlushTriage writes the reports held since the last flush to the triage
// queue, in one transaction (see Desk.DeferTriage).
func (d *Desk) FlushTriage(ctx context.Context) error {
	d.triageMu.Lock()
	ts := d.triageBuf
	d.triageBuf = nil
	d.triageMu.Unlock()
	if len(ts) == 0 {
		return nil
	}
	return d.writeTriage(ctx, ts)
}

func (d *Desk) writeTriage(ctx context.Context, ts []*store.Triaged) error {
	err := d.DB.Write(ctx, func(tx *sql.Tx) error {
		for _, t := range ts {
			if err := store.AddTriageTx(ctx, tx, t); err != nil {
				return err
			}
			if err := store.MarkRcptTx(ctx, tx, t.SpoolID, t.Rcpt, store.SpoolDone, "held in triage: "+t.Reason); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("intake policy: %w", err)
	}
	if d.Triaged != nil {
		d.Triaged()
	}
	return nil
}

func decodeSubject(s string) string {
	if dec, err := new(mime.WordDecoder).DecodeHeader(s); err == nil {
		s = dec
	}
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.TrimSpace(s)
}

// TriageList returns the reports waiting in triage, oldest first.
func (d *Desk) TriageList(ctx context.Context) ([]*store.Triaged, error) {
	var out []*store.Triaged
	err := d.DB.Read(ctx, func(tx *sql.Tx) (err error) {
		out, err = store.TriageListTx(ctx, tx)
		return err
	})
	return out, err
}

// TriageGet returns triage row id.
func (d *Desk) TriageGet(ctx context.Context, id int64) (*store.Triaged, error) {
	var t *store.Triaged
	err := d.DB.Read(ctx, func(tx *sql.Tx) (err error) {
		t, err = store.TriageTx(ctx, tx, id)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, refuse("there is no report %d in triage", id)
	}
	return t, err
}

// TriageAccept opens the incident for triage row id as if its report had
// just arrived (posted to the team, the reporter acknowledged), and
// returns the incident's ID. The row leaves the queue once that is done.
func (d *Desk) TriageAccept(ctx context.Context, id int64, actor Actor) (string, error) {
	t, err := d.TriageGet(ctx, id)
	if err != nil {
		return "", err
	}
	sm, err := d.DB.SpooledMessage(ctx, t.SpoolID)
	if err != nil {
		return "", fmt.Errorf("triage %d: %w", id, err)
	}
	if err := d.intake(ctx, sm, t.Rcpt, true); err != nil {
		return "", fmt.Errorf("triage %d: %w", id, err)
	}
	var inc string
	err = d.DB.Write(ctx, func(tx *sql.Tx) error {
		in, err := store.IncidentBySpoolTx(ctx, tx, sm.ID)
		if err != nil {
			return err
		}
		inc = in.ID
		now := d.now()
		if err := store.AddIncidentEventTx(ctx, tx, &store.IncidentEvent{Incident: in.ID, At: now, Actor: actor.Who, Kind: "triage",
			Detail: fmt.Sprintf("report %d accepted from triage", id)}); err != nil {
			return err
		}
		if err := store.AddOperatorEventTx(ctx, tx, &store.OperatorEvent{At: now, Actor: actor.Who, Action: "triage accept",
			Subject: fmt.Sprintf("report %d", id), Detail: "incident " + in.ID + " opened"}); err != nil {
			return err
		}
		return store.DeleteTriageTx(ctx, tx, id)
	})
	if err != nil {
		return "", fmt.Errorf("triage %d: %w", id, err)
	}
	d.log().Info("report accepted from triage", "triage", id, "spool", sm.ID, "incident", inc, "actor", actor.Who)
	return inc, nil
}

// TriageDrop removes triage row id: no incident is opened; the message
// stays in the spool, marked dropped.
func (d *Desk) TriageDrop(ctx context.Context, id int64, actor Actor) error {
	err := d.DB.Write(ctx, func(tx *sql.Tx) error {
		t, err := store.TriageTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := store.DeleteTriageTx(ctx, tx, id); err != nil {
			return err
		}
		if err := store.AddOperatorEventTx(ctx, tx, &store.OperatorEvent{At: d.now(), Actor: actor.Who, Action: "triage drop",
			Subject: fmt.Sprintf("report %d", id), Detail: fmt.Sprintf("from %s, spool %d", t.Sender, t.SpoolID)}); err != nil {
			return err
		}
		return store.MarkRcptTx(ctx, tx, t.SpoolID, t.Rcpt, store.SpoolDone, "dropped from triage by "+actor.Who)
	})
	if errors.Is(err, store.ErrNotFound) {
		return refuse("there is no report %d in triage", id)
	}
	if err != nil {
		return fmt.Errorf("triage %d: %w", id, err)
	}
	d.log().Info("report dropped from triage", "triage", id, "actor", actor.Who)
	return nil
}

// digestMax is how many waiting reports one digest lists.
const digestMax = 200

// triageDigest seals to the team a list of the reports waiting in triage
// when some arrived since the last digest and that was at least
// DigestEvery ago. It returns whether one was queued.
func (d *Desk) triageDigest(ctx context.Context) (bool, error) {
	every := d.IntakePolicy.DigestEvery
	if every <= 0 {
		every = time.Hour
	}
	now := d.now()
	sent := false
	err := d.DB.Write(ctx, func(tx *sql.Tx) error {
		last, fresh, err := store.TriageDigestTx(ctx, tx)
		if err != nil || fresh == 0 || !last.IsZero() && now.Before(last.Add(every)) {
			return err
		}
		ts, err := store.TriageListTx(ctx, tx)
		if err != nil {
			return err
		}
		var b strings.Builder
		for i, t := range ts {
			if i == digestMax {
				fmt.Fprintf(&b, "  ... and %d more: cvd triage list\n", len(ts)-digestMax)
				break
			}
			score := ""
			if t.HasScore {
				score = " score " + strconv.FormatFloat(t.Score, 'f', 2, 64)
			}
			fmt.Fprintf(&b, "  %d  %s  from %s (%s), %d bytes%s\n      subject: %s\n      held: %s\n",
				t.ID, t.ReceivedAt.Format(time.RFC3339), t.Sender, t.Source, t.Size, score, t.Subject, t.Reason)
		}
		since := "none before"
		if !last.IsZero() {
			since = utc(last)
		}
		r, err := render("triage-digest", map[string]any{"Count": len(ts), "New": fresh, "Since": since, "Waiting": strings.TrimRight(b.String(), "\n")})
		if err != nil {
			return err
		}
		if err := d.sealToTeamTx(ctx, tx, "triage-digest", "triage", r.Subject, r.Body); err != nil {
			return err
		}
		sent = true
		return store.MarkTriageDigestTx(ctx, tx, now)
	})
	if err != nil {
		return false, fmt.Errorf("triage digest: %w", err)
	}
	return sent, nil
}

// nextDigest is when the next triage digest is due (zero: none is).
func (d *Desk) nextDigest(ctx context.Context, tx *sql.Tx) (time.Time, error) {
	last, fresh, err := store.TriageDigestTx(ctx, tx)
	if err != nil || fresh == 0 {
		return time.Time{}, err
	}
	every := d.IntakePolicy.DigestEvery
	if every <= 0 {
		every = time.Hour
	}
	if last.IsZero() {
		return d.now(), nil
	}
	return last.Add(every), nil
}
