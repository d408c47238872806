package embargo

import (
	"context"
	"database/sql"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/store"
)

// KeyWarnBefore is how long before a pinned key, or one trusted on a
// list only, expires its holder and the coordinators are told, once.
const KeyWarnBefore = 30 * 24 * time.Hour

// warnExpiringKeys tells the holder of each trusted key (pinned, or on a
// list only) that expires within KeyWarnBefore, sealed to that key, and
// the team, sealed to theirs; each key and expiry date is warned about
// once. It returns how many keys.
func (d *Desk) warnExpiringKeys(ctx context.Context) (int, error) {
	now := d.now()
	n := 0
	err := d.DB.Write(ctx, func(tx *sql.Tx) error {
		ks, err := store.ExpiringKeysTx(ctx, tx, now, now.Add(KeyWarnBefore))
		if err != nil {
			return err
		}
		for _, k := range ks {
			data := map[string]any{"Email": k.Email, "Fingerprint": k.Fingerprint, "Expires": utc(k.Expires),
				"Intake": d.IntakeAddress(), "KeyKnown": false, "KeyProblem": ""}
			key, problem, err := d.keyFor(ctx, tx, k.ListID, k.Email, now)
			if err != nil {
				return err
			}
			if key != nil && key.Fingerprint() == k.Fingerprint {
				r, err := render("keyexpiry", data)
				if err != nil {
					return err
				}
				if err := d.sealToTx(ctx, tx, "keyexpiry", k.Email, key, r.Subject, r.Body, nil, ""); err != nil {
					return err
				}
				data["KeyKnown"] = true
			} else {
				data["KeyProblem"] = orDefault(problem, "its key is not usable")
			}
			r, err := render("keyexpiry-team", data)
			if err != nil {
				return err
			}
			if err := d.sealToTeamTx(ctx, tx, "keyexpiry-team", k.Email, r.Subject, r.Body); err != nil {
				return err
			}
			if err := store.MarkKeyExpiryNoticeTx(ctx, tx, k, now); err != nil {
				return err
			}
			d.log().Info("key expires soon: holder and team told", "email", k.Email, "fingerprint", k.Fingerprint,
				"expires", k.Expires.Format(time.RFC3339), "holder_told", key != nil)
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("key expiry warnings: %w", err)
	}
	return n, nil
}

// sealToTx queues one notice to to, sealed to key and signed by the
// project key, with raw attached as name when raw is not nil.
func (d *Desk) sealToTx(ctx context.Context, tx *sql.Tx, kind, to string, key *crypto.Key, subject, body string, raw []byte, name string) error {
	now := d.now()
	from := (&mail.Address{Name: "cvd", Address: d.IntakeAddress()}).String()
	m := &mailOut{from: from, to: to, subject: subject, body: body, messageID: newMessageID(d.Domain)}
	inner := m.inner()
	if raw != nil {
		inner = withAttachment(inner, raw, name)
	}
	sealed, err := crypto.Seal(inner, m.outer(now, d.IntakeAddress()), d.Key, key, now)
	if err != nil {
		return fmt.Errorf("%s notice to %s: %w", kind, to, err)
	}
	_, err = store.EnqueueTx(ctx, tx, &store.OutMessage{Rcpts: []string{to}, Raw: sealed, Origin: store.OriginNotice, Kind: kind, Ref: to, CreatedAt: now})
	return err
}

// AnnounceKeyRotation records that the project key old was replaced by
// next (by actor) and mails next, signed by old, to everyone who gets
// mail from cvd: the active members of every list (announce subscribers
// included), the team and the roster. It returns how many addresses it queued for.
func (d *Desk) AnnounceKeyRotation(ctx context.Context, old, next *crypto.Key, actor string) (int, error) {
	now := d.now()
	pub, err := next.ArmoredPublic()
	if err != nil {
		return 0, err
	}
	r, err := render("keyrotated", map[string]any{"Project": orDefault(d.Project.Name, d.Domain), "Intake": d.IntakeAddress(),
		"OldFingerprint": old.Fingerprint(), "Fingerprint": next.Fingerprint(), "URL": d.Project.URL})
	if err != nil {
		return 0, err
	}
	var n int
	err = d.DB.Write(ctx, func(tx *sql.Tx) error {
		if _, err := store.AddProjectKeyEventTx(ctx, tx, &store.ProjectKeyEvent{At: now, Kind: "rotated", Fingerprint: old.Fingerprint(),
			NewFingerprint: next.Fingerprint(), Actor: actor}); err != nil {
			return err
		}
		rcpts, err := store.ActiveMemberEmailsTx(ctx, tx)
		if err != nil {
			return err
		}
		for _, p := range append(append([]Person(nil), d.Team...), d.Roster...) {
			rcpts = append(rcpts, strings.ToLower(p.Email))
		}
		if len(rcpts) == 0 {
			return nil
		}
		from := (&mail.Address{Name: "cvd", Address: d.IntakeAddress()}).String()
		m := &mailOut{from: from, to: from, subject: r.Subject, body: r.Body, messageID: newMessageID(d.Domain)}
		inner := withAttachment(m.inner(), pub, d.IntakeAddress()+"-"+next.Fingerprint()+".asc")
		signed, err := crypto.SignClear(inner, m.outer(now, d.IntakeAddress()), old, now)
		if err != nil {
			return fmt.Errorf("sign the key rotation notice: %w", err)
		}
		if _, err := store.EnqueueTx(ctx, tx, &store.OutMessage{Rcpts: rcpts, Raw: signed, Origin: store.OriginNotice,
			Kind: "keyrotated", Ref: next.Fingerprint(), CreatedAt: now}); err != nil {
			return err
		}
		n = len(rcpts)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("announce key rotation: %w", err)
	}
	return n, nil
}

// RecordKeyRevocation records that actor revoked the project key fpr,
// with reason.
func (d *Desk) RecordKeyRevocation(ctx context.Context, fpr, reason, actor string) error {
	return d.DB.Write(ctx, func(tx *sql.Tx) error {
		_, err := store.AddProjectKeyEventTx(ctx, tx, &store.ProjectKeyEvent{At: d.now(), Kind: "revoked", Fingerprint: fpr, Actor: actor, Reason: reason})
		return err
	})
}
