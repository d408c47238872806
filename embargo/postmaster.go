package embargo

import (
	"context"
	"database/sql"
	"fmt"
	"net/mail"
	"strconv"
	"strings"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/store"
)

// ForwardRoleMail seals mail to postmaster@ or abuse@ (rcpt) as received,
// attached, to each team member with a usable key, and marks the spool
// row done, in one transaction. Without such a member the row is marked
// failed and stays in the spool for the operator.
func (d *Desk) ForwardRoleMail(ctx context.Context, sm *store.SpooledMessage, rcpt string) error {
	now := d.now()
	from := sm.MailFrom
	if m, err := mail.ReadMessage(strings.NewReader(string(headerOnly(sm.Raw)))); err == nil {
		if a, err := mail.ParseAddress(m.Header.Get("From")); err == nil {
			from = lists.HeaderName(a.Name) + " <" + a.Address + ">"
		}
	}
	if from == "" {
		from = "<>"
	}
	r, err := render("postmaster", map[string]any{"Address": strings.ToLower(rcpt), "From": from,
		"Received": utc(sm.ReceivedAt), "Size": strconv.Itoa(len(sm.Raw)) + " bytes"})
	if err != nil {
		return err
	}
	sent := 0
	err = d.DB.Write(ctx, func(tx *sql.Tx) error {
		sender := (&mail.Address{Name: "cvd", Address: d.IntakeAddress()}).String()
		for _, p := range d.Team {
			to := strings.ToLower(p.Email)
			k, problem, err := d.keyFor(ctx, tx, 0, to, now)
			if err != nil {
				return err
			}
			if k == nil {
				d.log().Warn("postmaster mail not forwarded to a team member", "to", to, "reason", problem)
				continue
			}
			m := &mailOut{from: sender, to: to, subject: r.Subject, body: r.Body, messageID: newMessageID(d.Domain)}
			raw, err := crypto.Seal(withAttachment(m.inner(), sm.Raw, "spool-"+strconv.FormatInt(sm.ID, 10)+".eml"),
				m.outer(now, d.IntakeAddress()), d.Key, k, now)
			if err != nil {
				return fmt.Errorf("seal mail to %s for %s: %w", rcpt, to, err)
			}
			if _, err := store.EnqueueTx(ctx, tx, &store.OutMessage{Rcpts: []string{to}, Raw: raw, Origin: store.OriginNotice,
				Kind: "postmaster", Ref: strconv.FormatInt(sm.ID, 10), CreatedAt: now}); err != nil {
				return err
			}
			sent++
		}
		if sent == 0 {
			return store.MarkRcptTx(ctx, tx, sm.ID, rcpt, store.SpoolFailed, "no team member has a usable key")
		}
		return store.MarkRcptTx(ctx, tx, sm.ID, rcpt, store.SpoolDone, "forwarded sealed to "+strconv.Itoa(sent)+" team members")
	})
	if err != nil {
		return fmt.Errorf("forward mail to %s (spool %d): %w", rcpt, sm.ID, err)
	}
	if sent == 0 {
		d.log().Error("mail to a role address not forwarded: no team member has a usable key; left in the spool", "rcpt", rcpt, "spool", sm.ID)
	} else {
		d.log().Info("mail to a role address forwarded sealed to the team", "rcpt", rcpt, "spool", sm.ID, "team", sent)
	}
	return nil
}

// headerOnly is raw's header, with the blank line that ends it.
func headerOnly(raw []byte) []byte {
	s := string(raw)
	if i := strings.Index(s, "\r\n\r\n"); i >= 0 {
		return []byte(s[:i+4])
	}
	if i := strings.Index(s, "\n\n"); i >= 0 {
		return []byte(s[:i+2])
	}
	return raw
}
