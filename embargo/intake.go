package embargo

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"

	"github.com/emersion/go-message/textproto"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/store"
)

// Intake handles mail to security@DOMAIN (the Router's Intake hook). A
// reply to an incident's mail (In-Reply-To or References) goes to that
// incident's list. Other mail opens an incident: its list with the
// reporter and the team, the reporter's key pinned when one came with the
// report, and an acknowledgement queued in the same transaction; then the
// report is posted to the list, which marks the spool row. Automatic mail
// (bounces, auto-replies, list traffic) never opens an incident.
func (d *Desk) Intake(ctx context.Context, sm *store.SpooledMessage, rcpt string) error {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(sm.Raw)))
	if err != nil {
		return d.markSpool(ctx, sm.ID, rcpt, store.SpoolFailed, "unreadable header: no incident opened")
	}
	if !lists.ShouldAutoReply(h, sm.MailFrom) {
		d.log().Info("automatic mail to the intake: no incident opened", "spool", sm.ID)
		return d.markSpool(ctx, sm.ID, rcpt, store.SpoolDone, "automatic message: no incident opened")
	}
	// A report already taken (cvd stopped before it was posted), or a reply.
	var id string
	err = d.DB.Read(ctx, func(tx *sql.Tx) error {
		if in, err := store.IncidentBySpoolTx(ctx, tx, sm.ID); err == nil {
			id = in.ID
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		refs := []string{msgID(h.Get("In-Reply-To"))}
		refs = append(refs, msgIDs(h.Get("References"))...)
		var err error
		id, err = store.IncidentByThreadTx(ctx, tx, refs)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("intake spool %d: %w", sm.ID, err)
	}
	if id == "" {
		if id, err = d.open(ctx, sm, h); err != nil {
			return fmt.Errorf("intake spool %d: %w", sm.ID, err)
		}
	}
	return d.post(ctx, id, sm, rcpt)
}

// post hands a message for incident id to its list, without a receipt of
// the list's own: the intake acknowledged it already.
func (d *Desk) post(ctx context.Context, id string, sm *store.SpooledMessage, rcpt string) error {
	if _, err := d.Lists.HandlePostWith(ctx, id, sm, rcpt, lists.PostOptions{NoReceipt: true}); err != nil {
		return fmt.Errorf("post to incident %s: %w", id, err)
	}
	return nil
}

func (d *Desk) markSpool(ctx context.Context, spoolID int64, rcpt, state, reason string) error {
	return d.DB.Write(ctx, func(tx *sql.Tx) error { return store.MarkRcptTx(ctx, tx, spoolID, rcpt, state, reason) })
}

// open opens an incident for the report in sm and returns its ID.
func (d *Desk) open(ctx context.Context, sm *store.SpooledMessage, h textproto.Header) (string, error) {
	now := d.now()
	from, err := mail.ParseAddress(h.Get("From"))
	if err != nil || !strings.Contains(from.Address, "@") {
		from = &mail.Address{Address: sm.MailFrom}
	}
	reporter := strings.ToLower(from.Address)
	// Keys that came with the report: outside and inside the encryption.
	undecryptable := false
	found, _ := crypto.Discover(sm.Raw, d.Limits)
	if o, err := crypto.Open(sm.Raw, []*crypto.Key{d.Key}, nil, now, d.Limits); err == nil {
		if inner, err := crypto.Discover(o.Entity, d.Limits); err == nil {
			found = append(found, inner...)
		}
	} else if errors.Is(err, crypto.ErrDecrypt) {
		undecryptable = true
	}
	var key *crypto.Key
	for _, f := range found {
		if slices.Contains(f.Key.Emails(), reporter) && (f.Addr == "" || f.Addr == reporter) && crypto.CheckUsable(f.Key, now) == nil {
			key = f.Key
			break
		}
	}
	var id string
	err = d.DB.Write(ctx, func(tx *sql.Tx) error {
		var seq int
		var err error
		if id, seq, err = store.NextIncidentIDTx(ctx, tx, now.Year()); err != nil {
			return err
		}
		in := &store.Incident{ID: id, Year: now.Year(), Seq: seq, State: store.IncidentNew, Privacy: Private,
			Reporter: reporter, ReporterName: lists.HeaderName(from.Name), SpoolID: sm.ID, CreatedAt: now}
		if err := store.CreateIncidentTx(ctx, tx, in); err != nil {
			return err
		}
		if _, err := d.Lists.CreateListTx(ctx, tx, id, store.ListIncident, "incident "+id); err != nil {
			return err
		}
		o := &op{d: d, ctx: ctx, tx: tx, in: &Incident{Incident: *in}, actor: Actor{Who: reporter}, now: now, prevState: in.State}
		if err := o.event("opened", "report received (spool %d)", sm.ID); err != nil {
			return err
		}
		rp := Person{Name: in.ReporterName, Email: reporter}
		keyNote := "no key came with the report"
		if key != nil {
			_, err := store.PinnedKeyTx(ctx, tx, reporter)
			switch {
			case errors.Is(err, store.ErrNotFound):
				if rp.Key, err = key.ArmoredPublic(); err != nil {
					return err
				}
				keyNote = "key " + key.Fingerprint() + " pinned from the report"
			case err != nil:
				return err
			default:
				keyNote = "a key came with the report; the key pinned before is kept"
			}
		}
		if err := d.addPerson(ctx, tx, id, rp, lists.RoleReporter); err != nil {
			return err
		}
		if err := o.event("key", "%s", keyNote); err != nil {
			return err
		}
		for _, p := range d.Team {
			if err := d.addPerson(ctx, tx, id, p, lists.RoleCoordinator); err != nil {
				return err
			}
		}
		if err := store.AddIncidentThreadTx(ctx, tx, msgID(h.Get("Message-Id")), id); err != nil {
			return err
		}
		k, _, err := d.keyFor(ctx, tx, reporter, now)
		if err != nil {
			return err
		}
		r, err := render("ack", map[string]any{"ID": id, "ListAddress": d.ListAddress(id), "Intake": d.IntakeAddress(),
			"Project": d.Project.Name, "Fingerprint": d.Key.Fingerprint(), "KeyKnown": k != nil, "Undecryptable": undecryptable,
			"MinNotice": human(d.Policy.MinNotice), "MaxEmbargo": human(d.Policy.MaxEmbargo), "Escalation": human(d.Policy.AckEscalation)})
		if err != nil {
			return err
		}
		if _, _, err := o.sendOne("ack", reporter, r, store.OriginReply, true, msgID(h.Get("Message-Id"))); err != nil {
			return err
		}
		return o.event("ack", "acknowledgement sent (%s)", map[bool]string{true: "encrypted", false: "plain"}[k != nil])
	})
	if err != nil {
		return "", err
	}
	d.log().Info("incident opened", "incident", id, "spool", sm.ID, "reporter_key", key != nil)
	return id, nil
}

func msgID(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return v[i : i+j+1]
		}
	}
	return ""
}

func msgIDs(v string) []string {
	var out []string
	for {
		id := msgID(v)
		if id == "" {
			return out
		}
		out = append(out, id)
		v = v[strings.Index(v, id)+len(id):]
	}
}
