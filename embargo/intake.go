package embargo

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-message/textproto"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/mailauth"
	"github.com/cvd-project/cvd/store"
)

// reportSource is how a key that came with a report is recorded: trusted
// on that report's incident only.
const reportSource = "came with the report, unverified"

// Intake handles mail to security@DOMAIN (the Router's Intake hook). A
// reply to an incident's mail (In-Reply-To or References) goes to that
// incident's list. Other mail opens an incident: its list with the
// reporter and the team, the reporter's key trusted on that incident only
// when one came with the report. Then the report goes to the team: posted
// to the list, or, when cvd cannot open, parse or fit it in its limits,
// sealed to the coordinators as received. Only once the team's copies are
// queued is the reporter acknowledged, exactly once, and the spool row
// marked. Automatic mail (bounces, auto-replies, list traffic) never opens
// an incident.
func (d *Desk) Intake(ctx context.Context, sm *store.SpooledMessage, rcpt string) error {
	return d.intake(ctx, sm, rcpt, false)
}

// intake is Intake; accepted skips the intake policy (a report accepted
// from triage).
func (d *Desk) intake(ctx context.Context, sm *store.SpooledMessage, rcpt string, accepted bool) error {
	h, herr := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(sm.Raw)))
	if herr != nil {
		h = textproto.Header{}
	}
	if !lists.ShouldAutoReply(h, sm.MailFrom) {
		d.log().Info("automatic mail to the intake: no incident opened", "spool", sm.ID)
		return d.markSpool(ctx, sm.ID, rcpt, store.SpoolDone, "automatic message: no incident opened")
	}
	// A report already taken (cvd stopped before it was acknowledged), or
	// a reply.
	var id string
	opening := false
	err := d.DB.Read(ctx, func(tx *sql.Tx) error {
		if in, err := store.IncidentBySpoolTx(ctx, tx, sm.ID); err == nil {
			id, opening = in.ID, true
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
	var record func(context.Context, *sql.Tx) error
	if id == "" && !accepted {
		// A new report: the intake policy decides before any work on it.
		var ok bool
		ok, record, err = d.admit(ctx, sm, rcpt, h)
		if err != nil {
			return fmt.Errorf("intake spool %d: %w", sm.ID, err)
		}
		if !ok {
			return nil
		}
	}
	rp := d.examine(ctx, sm, h)
	if herr != nil {
		rp.problem = "unreadable header"
	}
	rp.opening = opening
	if id == "" && rp.problem == "" && len(sm.Raw) <= oneTransactionMax {
		return d.openPostAck(ctx, sm, rcpt, rp, record)
	}
	if id == "" {
		if id, err = d.open(ctx, sm, rp, record); err != nil {
			return d.intakeFailed(ctx, sm, rcpt, rp, fmt.Errorf("intake spool %d: %w", sm.ID, err))
		}
		rp.opening = true
	}
	if err := d.deliver(ctx, id, sm, rcpt, rp); err != nil {
		return d.intakeFailed(ctx, sm, rcpt, rp, err)
	}
	return nil
}

// oneTransactionMax is the largest report opened, posted and acknowledged
// in one transaction; the sealing of a larger one must not hold the
// writer, so it is posted in a transaction of its own.
const oneTransactionMax = 256 << 10

// openPostAck opens an incident for a new report, posts the report to its
// list, acknowledges the reporter and marks the spool row, all in one
// transaction. A post the list refuses is sent to the coordinators as
// received (see deliver) once the incident is committed.
func (d *Desk) openPostAck(ctx context.Context, sm *store.SpooledMessage, rcpt string, rp *report, record func(context.Context, *sql.Tx) error) error {
	var id string
	var res *lists.PostResult
	var acked bool
	ack := func(ctx context.Context, tx *sql.Tx, _ string) error {
		if err := d.ackDoneTx(ctx, tx, id, sm, rcpt, rp); err != nil {
			return err
		}
		acked = true
		return nil
	}
	rp.opening = true
	err := d.DB.Write(ctx, func(tx *sql.Tx) (err error) {
		acked = false
		if id, err = d.openTx(ctx, tx, sm, rp, record); err != nil {
			return err
		}
		res, err = d.Lists.HandlePostWith(ctx, id, sm, d.ListAddress(id), lists.PostOptions{NoReceipt: true, Notes: d.ackNotes(rp), Commit: ack, Tx: tx})
		return err
	})
	if err != nil {
		return d.intakeFailed(ctx, sm, rcpt, rp, fmt.Errorf("intake spool %d: %w", sm.ID, err))
	}
	d.log().Info("incident opened", "incident", id, "spool", sm.ID, "reporter_key", rp.key != nil)
	if d.AfterPost != nil {
		d.AfterPost(id)
	}
	if acked {
		return nil
	}
	if res.Status == lists.PostRefused {
		err = d.quarantine(ctx, id, sm, rcpt, rp, res.Reason)
	} else {
		err = d.deliver(ctx, id, sm, rcpt, rp)
	}
	if err != nil {
		return d.intakeFailed(ctx, sm, rcpt, rp, err)
	}
	return nil
}

// report is what the intake learns from a message before acting on it.
type report struct {
	h        textproto.Header
	from     *mail.Address
	reporter string
	// key is a usable key for the reporter's address that came with the
	// report; keyProblem says why one that came cannot be used.
	key        *crypto.Key
	keyProblem string
	// others are keys that came for the reporter's address but are not
	// the one used (for conflicts with configured keys).
	others        []*crypto.Key
	undecryptable bool
	// problem is why cvd cannot open the message ("" when it can).
	problem string
	// authBy says how the reporter's address authenticated ("" when it
	// did not): only then does cvd send them automatic mail.
	authBy string
	// opening says the message is the report that opened its incident.
	opening bool
}

// examine reads the sender, the keys that came with the message and
// whether cvd can open it.
func (d *Desk) examine(ctx context.Context, sm *store.SpooledMessage, h textproto.Header) *report {
	now := d.now()
	rp := &report{h: h}
	from, err := mail.ParseAddress(h.Get("From"))
	if err != nil || !strings.Contains(from.Address, "@") {
		from = &mail.Address{Address: sm.MailFrom}
	}
	rp.from = from
	rp.reporter = strings.ToLower(from.Address)
	pinned := d.pinnedKey(ctx, rp.reporter)
	// Keys that came with the report: outside and inside the encryption.
	found, _ := crypto.Discover(sm.Raw, d.Limits)
	o, err := crypto.Open(sm.Raw, []*crypto.Key{d.Key}, pinned, now, d.Limits)
	switch {
	case sm.Auth.AuthenticatedFor(rp.reporter) && sm.Auth.DMARC == mailauth.Pass:
		rp.authBy = "DMARC pass for " + sm.Auth.FromDomain
	case sm.Auth.AuthenticatedFor(rp.reporter):
		rp.authBy = "SPF pass for the envelope sender"
	case err == nil && o.Signature == crypto.Good && len(pinned) == 1 && strings.EqualFold(o.Signer, pinned[0].Fingerprint()):
		rp.authBy = "good signature by the pinned key " + o.Signer
	}
	switch {
	case err == nil:
		if inner, err := crypto.Discover(o.Entity, d.Limits); err == nil {
			found = append(found, inner...)
		}
	case errors.Is(err, crypto.ErrDecrypt):
		rp.undecryptable = true
		rp.problem = "encrypted, but not to the project key: cvd cannot decrypt it"
	case errors.Is(err, crypto.ErrLimit):
		rp.problem = "exceeds a limit: " + err.Error()
	default:
		d.log().Warn("report cannot be opened", "spool", sm.ID, "err", err)
		rp.problem = "cvd cannot parse or open it"
	}
	for _, f := range found {
		if !slices.Contains(f.Key.Emails(), rp.reporter) || f.Addr != "" && f.Addr != rp.reporter {
			continue
		}
		if err := crypto.CheckUsable(f.Key, now); err != nil {
			if rp.key == nil && rp.keyProblem == "" {
				rp.keyProblem = describeKeyProblem(f.Key, err)
			}
			continue
		}
		if rp.key == nil {
			rp.key, rp.keyProblem = f.Key, ""
		} else if rp.key.Fingerprint() != f.Key.Fingerprint() {
			rp.others = append(rp.others, f.Key)
		}
	}
	return rp
}

// pinnedKey is the key pinned for email, as a verification key list
// (empty when none is pinned or it cannot be read).
func (d *Desk) pinnedKey(ctx context.Context, email string) []*crypto.Key {
	var pk *store.PublicKey
	err := d.DB.Read(ctx, func(tx *sql.Tx) (err error) {
		pk, err = store.PinnedKeyTx(ctx, tx, email)
		return err
	})
	if err != nil {
		return nil
	}
	k, err := crypto.ParseKey([]byte(pk.Armored))
	if err != nil {
		return nil
	}
	return []*crypto.Key{k}
}

// mayReply says whether cvd may send the reporter automatic mail.
func (d *Desk) mayReply(rp *report) bool {
	return rp.authBy != "" || d.AcknowledgeUnauthenticated
}

// ackNotes tell the team, in the report's header block, whether and why
// the reporter gets automatic mail.
func (d *Desk) ackNotes(rp *report) []string {
	switch {
	case !rp.opening:
		return nil
	case rp.authBy != "":
		return []string{"reporter authenticated (" + rp.authBy + "): acknowledged"}
	case d.AcknowledgeUnauthenticated:
		return []string{"reporter not authenticated, acknowledged all the same (intake.acknowledge_unauthenticated)"}
	}
	return []string{notAcked}
}

// notAcked is the team's note on a report whose sender did not authenticate.
const notAcked = "reporter NOT acknowledged: unauthenticated sender (no DMARC pass for the From domain, no SPF pass for the envelope sender, no good signature by a pinned key); no automatic mail goes to them"

// describeKeyProblem says to a reporter why their key cannot be used.
func describeKeyProblem(k *crypto.Key, err error) string {
	var ke *crypto.KeyError
	if !errors.As(err, &ke) {
		return "the key " + k.Fingerprint() + " is unusable"
	}
	var why string
	switch ke.Problem {
	case crypto.KeyExpired:
		why = "has expired"
	case crypto.KeyRevoked:
		why = "is revoked"
	case crypto.KeyNoEncryption:
		why = "has no valid encryption subkey (it can sign, but nothing can be encrypted to it)"
	case crypto.KeyWeak:
		why = "is too weak"
	default:
		why = "is invalid"
	}
	if ke.Detail != "" && ke.Problem != crypto.KeyNoEncryption {
		why += " (" + ke.Detail + ")"
	}
	return "the key " + k.Fingerprint() + " " + why
}

func (d *Desk) markSpool(ctx context.Context, spoolID int64, rcpt, state, reason string) error {
	return d.DB.Write(ctx, func(tx *sql.Tx) error { return store.MarkRcptTx(ctx, tx, spoolID, rcpt, state, reason) })
}

// open opens an incident for the report in sm and returns its ID; record,
// when set, counts it for the intake's limits in the same transaction.
// The acknowledgement waits until the team has the report (deliver).
func (d *Desk) open(ctx context.Context, sm *store.SpooledMessage, rp *report, record func(context.Context, *sql.Tx) error) (string, error) {
	var id string
	err := d.DB.Write(ctx, func(tx *sql.Tx) (err error) {
		id, err = d.openTx(ctx, tx, sm, rp, record)
		return err
	})
	if err != nil {
		return "", err
	}
	d.log().Info("incident opened", "incident", id, "spool", sm.ID, "reporter_key", rp.key != nil)
	return id, nil
}

// openTx is open inside tx.
func (d *Desk) openTx(ctx context.Context, tx *sql.Tx, sm *store.SpooledMessage, rp *report, record func(context.Context, *sql.Tx) error) (string, error) {
	now := d.now()
	reporter := rp.reporter
	id, seq, err := store.NextIncidentIDTx(ctx, tx, now.Year())
	if err != nil {
		return "", err
	}
	err = func() error {
		if record != nil {
			if err := record(ctx, tx); err != nil {
				return err
			}
		}
		in := &store.Incident{ID: id, Year: now.Year(), Seq: seq, State: store.IncidentNew, Privacy: Private,
			Reporter: reporter, ReporterName: lists.HeaderName(rp.from.Name), SpoolID: sm.ID, CreatedAt: now}
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
		keyNote, err := d.addReporterTx(ctx, tx, o, sm, rp)
		if err != nil {
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
		return store.AddIncidentThreadTx(ctx, tx, msgID(rp.h.Get("Message-Id")), id)
	}()
	return id, err
}

// addReporterTx adds the reporter to the new incident's list. A key that
// came with the report is trusted on this incident only, unless the
// reporter's address has a key of its own: a configured address keeps the
// configured key (a different key is reported to the team as a
// conflict), another address keeps its pinned key.
func (d *Desk) addReporterTx(ctx context.Context, tx *sql.Tx, o *op, sm *store.SpooledMessage, rp *report) (string, error) {
	nm := lists.NewMember{Email: rp.reporter, Name: rp.from.Name, Role: lists.RoleReporter, Actor: rp.reporter, ListKey: reportSource}
	note := "no key came with the report"
	if rp.keyProblem != "" {
		note = "the key that came with the report is unusable: " + rp.keyProblem
	}
	if p, ok := d.configured(rp.reporter); ok {
		conf, err := crypto.ParseKey(p.Key)
		if err != nil {
			return "", err
		}
		var dropped []string
		for _, k := range append([]*crypto.Key{rp.key}, rp.others...) {
			if k != nil && k.Fingerprint() != conf.Fingerprint() {
				dropped = append(dropped, k.Fingerprint()+" (came with a report to "+d.IntakeAddress()+", spool "+strconv.FormatInt(sm.ID, 10)+", incident "+o.in.ID+")")
			}
		}
		if len(dropped) > 0 {
			c := &keyConflict{email: rp.reporter, where: d.Authority(rp.reporter), fingerprint: conf.Fingerprint(), dropped: dropped}
			if err := d.tellConflictsTx(ctx, tx, []*keyConflict{c}); err != nil {
				return "", err
			}
			note = "a key that came with the report conflicts with " + c.where + ": dropped, the team was told"
		} else if rp.key != nil {
			note = "the key that came with the report is the configured one"
		}
	} else if rp.key != nil {
		_, err := store.PinnedKeyTx(ctx, tx, rp.reporter)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if nm.Key, err = rp.key.ArmoredPublic(); err != nil {
				return "", err
			}
			note = "key " + rp.key.Fingerprint() + " " + reportSource + ": trusted on " + o.in.ID + " only"
		case err != nil:
			return "", err
		default:
			note = "a key came with the report; the key pinned before is kept"
		}
	}
	_, err := d.Lists.AddMemberTx(ctx, tx, o.in.ID, nm)
	if err != nil && nm.Key != nil && !errors.Is(err, store.ErrExists) {
		d.log().Warn("reporter's key not trusted", "incident", o.in.ID, "err", err)
		note = "the key that came with the report was refused: " + err.Error()
		nm.Key = nil
		_, err = d.Lists.AddMemberTx(ctx, tx, o.in.ID, nm)
	}
	if err != nil && !errors.Is(err, store.ErrExists) {
		return "", fmt.Errorf("add reporter to %s: %w", o.in.ID, err)
	}
	return note, nil
}

// deliver gets the message to incident id's team, acknowledges a new
// report and marks the spool row, each exactly once even when cvd stopped
// in between: the acknowledgement and the spool row commit in the post's
// transaction; a post recorded without them (a duplicate, or one from
// before) is acknowledged on its own, found by the list's address, under
// which the post is recorded.
func (d *Desk) deliver(ctx context.Context, id string, sm *store.SpooledMessage, rcpt string, rp *report) error {
	var post *store.Post
	err := d.DB.Read(ctx, func(tx *sql.Tx) error {
		l, err := store.ListByNameTx(ctx, tx, id)
		if err != nil {
			return err
		}
		post, err = store.PostBySpoolTx(ctx, tx, l.ID, sm.ID)
		if errors.Is(err, store.ErrNotFound) {
			post, err = nil, nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("post to incident %s: %w", id, err)
	}
	problem := rp.problem
	switch {
	case post != nil && post.Status == lists.PostRefused:
		problem = "the list refused it"
	case post != nil:
	case problem == "":
		// The acknowledgement and the spool row commit with the post.
		acked := false
		ack := func(ctx context.Context, tx *sql.Tx, _ string) error {
			if err := d.ackDoneTx(ctx, tx, id, sm, rcpt, rp); err != nil {
				return err
			}
			acked = true
			return nil
		}
		res, err := d.Lists.HandlePostWith(ctx, id, sm, d.ListAddress(id), lists.PostOptions{NoReceipt: true, Notes: d.ackNotes(rp), Commit: ack})
		if err != nil {
			return fmt.Errorf("post to incident %s: %w", id, err)
		}
		if res.Status == lists.PostRefused {
			problem = res.Reason
		}
		if d.AfterPost != nil {
			d.AfterPost(id)
		}
		if acked {
			return nil
		}
	}
	if problem != "" {
		return d.quarantine(ctx, id, sm, rcpt, rp, problem)
	}
	return d.DB.Write(ctx, func(tx *sql.Tx) error { return d.ackDoneTx(ctx, tx, id, sm, rcpt, rp) })
}

// ackDoneTx acknowledges the report (once) and marks its spool row done.
func (d *Desk) ackDoneTx(ctx context.Context, tx *sql.Tx, id string, sm *store.SpooledMessage, rcpt string, rp *report) error {
	if _, err := d.ackTx(ctx, tx, id, sm, rp); err != nil {
		return err
	}
	return store.MarkRcptTx(ctx, tx, sm.ID, rcpt, store.SpoolDone, "posted to "+id)
}

// ackTx acknowledges the report that opened incident id, unless sm is not
// that report or it was acknowledged already.
func (d *Desk) ackTx(ctx context.Context, tx *sql.Tx, id string, sm *store.SpooledMessage, rp *report) (bool, error) {
	o, err := d.beginOp(ctx, tx, id, Actor{Who: rp.reporter})
	if err != nil {
		return false, err
	}
	if o.in.SpoolID != sm.ID {
		return false, nil
	}
	evs, err := store.IncidentEventsTx(ctx, tx, id)
	if err != nil {
		return false, err
	}
	for _, ev := range evs {
		if ev.Kind == "ack" {
			return false, nil
		}
	}
	if !d.mayReply(rp) {
		d.log().Info("reporter not acknowledged: unauthenticated", "incident", id, "spool", sm.ID)
		return false, o.event("ack", "not acknowledged: the reporter's address did not authenticate")
	}
	reporter := o.in.Reporter
	l, err := store.ListByNameTx(ctx, tx, id)
	if err != nil {
		return false, err
	}
	k, problem, err := d.keyFor(ctx, tx, l.ID, reporter, o.now)
	if err != nil {
		return false, err
	}
	keyProblem := rp.keyProblem
	if k == nil && keyProblem == "" && strings.HasPrefix(problem, "the pinned key is unusable: ") {
		// A key known from before that no longer works.
		keyProblem = strings.TrimPrefix(problem, "the pinned key is unusable: ")
	}
	r, err := render("ack", map[string]any{"ID": id, "ListAddress": d.ListAddress(id), "Intake": d.IntakeAddress(),
		"Project": d.Project.Name, "Fingerprint": d.Key.Fingerprint(), "KeyKnown": k != nil, "Undecryptable": rp.undecryptable,
		"KeyProblem": keyProblem, "MinNotice": human(d.Policy.MinNotice), "MaxEmbargo": human(d.Policy.MaxEmbargo), "Escalation": human(d.Policy.AckEscalation),
		"HardMax": d.hardMaxText()})
	if err != nil {
		return false, err
	}
	if _, _, err := o.sendOne("ack", reporter, r, store.OriginReply, true, msgID(rp.h.Get("Message-Id"))); err != nil {
		return false, err
	}
	return true, o.event("ack", "acknowledgement sent (%s)", map[bool]string{true: "encrypted", false: "plain"}[k != nil])
}

// quarantine seals the message as received to the incident's coordinators
// with the reason cvd could not process it, acknowledges a new report and
// marks the spool row, in one transaction. Without a coordinator who has a
// usable key the row is marked failed and nobody is acknowledged.
func (d *Desk) quarantine(ctx context.Context, id string, sm *store.SpooledMessage, rcpt string, rp *report, problem string) error {
	var sent int
	err := d.DB.Write(ctx, func(tx *sql.Tx) error {
		o, err := d.beginOp(ctx, tx, id, System)
		if err != nil {
			return err
		}
		rs, err := o.members()
		if err != nil {
			return err
		}
		var to []recipient
		var keys []*crypto.Key
		for _, m := range rs {
			if m.Role == lists.RoleCoordinator && m.key != nil {
				to = append(to, m)
				keys = append(keys, m.key)
			}
		}
		if len(to) == 0 {
			if err := o.event("quarantine", "message not processed (%s) and no coordinator has a usable key: kept in the spool (%d)", problem, sm.ID); err != nil {
				return err
			}
			return store.MarkRcptTx(ctx, tx, sm.ID, rcpt, store.SpoolFailed, "not processed ("+problem+"); no coordinator has a usable key")
		}
		r, err := render("quarantine", map[string]any{"ID": id, "Reason": problem, "Received": utc(sm.ReceivedAt),
			"From": lists.HeaderName(rp.from.Name) + " <" + rp.reporter + ">", "Size": strconv.Itoa(len(sm.Raw)) + " bytes",
			"Acked": o.in.SpoolID == sm.ID && d.mayReply(rp), "NotAcked": o.in.SpoolID == sm.ID && !d.mayReply(rp)})
		if err != nil {
			return err
		}
		list := d.ListAddress(id)
		m := &mailOut{from: o.cvdFrom(), to: list, replyTo: list, subject: r.Subject, body: r.Body, messageID: newMessageID(d.Domain)}
		copies, err := crypto.SealFanout(withAttachment(m.inner(), sm.Raw, "spool-"+strconv.FormatInt(sm.ID, 10)+".eml"),
			m.outer(o.now, list), d.Key, keys, o.now)
		if err != nil {
			return fmt.Errorf("seal the unprocessed message: %w", err)
		}
		for i, rc := range to {
			if _, err := store.EnqueueTx(ctx, tx, &store.OutMessage{Rcpts: []string{rc.Email}, Raw: copies[i], Origin: store.OriginNotice,
				Kind: "quarantine", Ref: id, CreatedAt: o.now}); err != nil {
				return err
			}
		}
		sent = len(to)
		if err := o.event("quarantine", "message not processed (%s): sent as received to %d coordinators, sealed", problem, sent); err != nil {
			return err
		}
		if _, err := d.ackTx(ctx, tx, id, sm, rp); err != nil {
			return err
		}
		return store.MarkRcptTx(ctx, tx, sm.ID, rcpt, store.SpoolDone, "not processed ("+problem+"): sent to the coordinators as received")
	})
	if err != nil {
		return fmt.Errorf("forward unprocessed message of incident %s: %w", id, err)
	}
	if sent == 0 {
		d.log().Error("message cvd cannot process and no coordinator can receive: left in the spool", "incident", id, "spool", sm.ID, "reason", problem)
	} else {
		d.log().Warn("message cvd cannot process sent to the coordinators as received", "incident", id, "spool", sm.ID, "reason", problem, "coordinators", sent)
	}
	return nil
}

// withAttachment turns a text/plain entity into a multipart/mixed with raw
// attached as application/octet-stream (never parsed, opened by hand).
func withAttachment(text, raw []byte, name string) []byte {
	head, body, _ := bytes.Cut(text, []byte("\r\n\r\n"))
	boundary := strings.TrimSuffix(strings.TrimPrefix(newMessageID("x"), "<"), "@x>")
	var b bytes.Buffer
	for _, line := range strings.Split(string(head), "\r\n") {
		k := strings.ToLower(line)
		if strings.HasPrefix(k, "content-type:") || strings.HasPrefix(k, "content-transfer-encoding:") {
			continue
		}
		b.WriteString(line + "\r\n")
	}
	writeField(&b, "Content-Type", `multipart/mixed; boundary="`+boundary+`"`)
	b.WriteString("\r\n--" + boundary + "\r\n")
	writeField(&b, "Content-Type", "text/plain; charset=utf-8")
	writeField(&b, "Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n")
	b.Write(body)
	b.WriteString("\r\n--" + boundary + "\r\n")
	writeField(&b, "Content-Type", `application/octet-stream; name="`+name+`"`)
	writeField(&b, "Content-Disposition", `attachment; filename="`+name+`"`)
	writeField(&b, "Content-Transfer-Encoding", "base64")
	b.WriteString("\r\n")
	enc := base64.StdEncoding.EncodeToString(raw)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--" + boundary + "--\r\n")
	return b.Bytes()
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
