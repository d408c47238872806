package embargo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/store"
)

// Authority says where the key of email is set by the administrator:
// "cvd.toml (embargo.team)" or "cvd.toml (embargo.roster)" for the
// configured team and roster, else "". Mail never changes such a key.
func (d *Desk) Authority(email string) string {
	email = strings.ToLower(strings.TrimSpace(email))
	for _, p := range d.Team {
		if strings.EqualFold(p.Email, email) {
			return "cvd.toml (embargo.team)"
		}
	}
	for _, p := range d.Roster {
		if strings.EqualFold(p.Email, email) {
			return "cvd.toml (embargo.roster)"
		}
	}
	return ""
}

// configured returns the configured person for email, if any has a key.
func (d *Desk) configured(email string) (Person, bool) {
	for _, p := range append(slices.Clip(d.Team), d.Roster...) {
		if strings.EqualFold(p.Email, email) && p.Key != nil {
			return p, true
		}
	}
	return Person{}, false
}

// keyConflict is a key learned from mail that the configuration overrode.
type keyConflict struct {
	email, where, fingerprint string
	dropped                   []string // "FPR (how it came)"
}

// PinConfigKeys pins the keys of the configured team and roster, which
// are authoritative: a different key pinned for one of their addresses
// (learned from mail, or by an older cvd) is replaced, list-only keys of
// those addresses are dropped, and the team is told of each conflict.
// cvd serve runs it at start and every admin command before it works.
func (d *Desk) PinConfigKeys(ctx context.Context) error {
	var n int
	err := d.DB.Write(ctx, func(tx *sql.Tx) error {
		var conflicts []*keyConflict
		for _, p := range append(slices.Clip(d.Team), d.Roster...) {
			if p.Key == nil {
				continue
			}
			c, err := d.pinConfigKeyTx(ctx, tx, p)
			if err != nil {
				return err
			}
			if c != nil {
				conflicts = append(conflicts, c)
			}
		}
		n = len(conflicts)
		return d.tellConflictsTx(ctx, tx, conflicts)
	})
	if err != nil {
		return fmt.Errorf("pin the configured keys: %w", err)
	}
	if n > 0 {
		d.log().Warn("keys learned from mail conflicted with the configuration and were dropped", "count", n)
	}
	return nil
}

// pinConfigKeyTx pins p's configured key for p's address, replacing any
// other, and drops the address's list-only keys. It returns what it
// overrode, or nil.
func (d *Desk) pinConfigKeyTx(ctx context.Context, tx *sql.Tx, p Person) (*keyConflict, error) {
	email := strings.ToLower(strings.TrimSpace(p.Email))
	where := d.Authority(email)
	k, err := crypto.ParseKey(p.Key)
	if err != nil {
		return nil, fmt.Errorf("%s key of %s: %w", where, email, err)
	}
	if !slices.Contains(k.Emails(), email) {
		d.log().Warn("configured key has no user ID for its address: not pinned", "email", email, "fingerprint", k.Fingerprint())
		return nil, nil
	}
	now := d.now()
	pub, err := k.ArmoredPublic()
	if err != nil {
		return nil, err
	}
	pk := store.PublicKey{Fingerprint: k.Fingerprint(), Armored: pub, Created: k.Created(), Expires: k.Expires(), Revoked: k.Revoked(now)}
	c := &keyConflict{email: email, where: where, fingerprint: k.Fingerprint()}
	cur, err := store.PinnedKeyTx(ctx, tx, email)
	switch {
	case errors.Is(err, store.ErrNotFound):
		cur = nil
	case err != nil:
		return nil, err
	}
	ch := store.KeyChange{At: now, Actor: "cvd.toml", Reason: "configured in " + where}
	if cur != nil && !strings.EqualFold(cur.Fingerprint, pk.Fingerprint) {
		c.dropped = append(c.dropped, cur.Fingerprint+" ("+d.pinOrigin(ctx, tx, email, cur.Fingerprint)+")")
		ch.Reason = where + " is authoritative: the key learned from mail is dropped"
		if err := store.ReplaceKeyTx(ctx, tx, email, pk, ch); err != nil {
			return nil, err
		}
	} else if err := store.PinKeyTx(ctx, tx, email, pk, ch); err != nil {
		return nil, err
	}
	lists, err := store.DropListKeysTx(ctx, tx, email, store.KeyChange{At: now, Actor: "cvd.toml", Reason: where + " is authoritative"})
	if err != nil {
		return nil, err
	}
	for _, l := range lists {
		c.dropped = append(c.dropped, "a key trusted on list "+l+" only")
	}
	if len(c.dropped) == 0 {
		return nil, nil
	}
	return c, nil
}

// pinOrigin tells who pinned fingerprint for email, from the key history.
func (d *Desk) pinOrigin(ctx context.Context, tx *sql.Tx, email, fingerprint string) string {
	var actor, reason string
	err := tx.QueryRowContext(ctx, `SELECT actor, reason FROM key_event WHERE email = ? AND new_fingerprint = ? AND kind IN ('pinned', 'replaced') ORDER BY id DESC LIMIT 1`,
		email, fingerprint).Scan(&actor, &reason)
	if err != nil {
		return "origin unknown"
	}
	return "pinned by " + actor + ": " + reason
}

// tellConflictsTx seals a notice of each conflict to every team member
// with a usable key.
func (d *Desk) tellConflictsTx(ctx context.Context, tx *sql.Tx, cs []*keyConflict) error {
	for _, c := range cs {
		r, err := render("keyconflict", map[string]any{"Email": c.email, "Where": c.where, "Fingerprint": c.fingerprint,
			"Dropped": "    " + strings.Join(c.dropped, "\n    ")})
		if err != nil {
			return err
		}
		if err := d.sealToTeamTx(ctx, tx, "key-conflict", c.email, r.Subject, r.Body); err != nil {
			return err
		}
		d.log().Warn("key from mail dropped: the configuration is authoritative", "email", c.email, "configured", c.fingerprint, "dropped", len(c.dropped))
	}
	return nil
}

// sealToTeamTx queues a notice to each configured team member, sealed to
// their globally pinned key; members without a usable key are logged.
func (d *Desk) sealToTeamTx(ctx context.Context, tx *sql.Tx, kind, ref, subject, body string) error {
	_, err := d.sealToTeamWithTx(ctx, tx, kind, ref, subject, body, nil, "")
	return err
}

// sealToTeamWithTx is sealToTeamTx with raw attached as file name (when
// raw is not nil); it returns how many team members it queued for.
func (d *Desk) sealToTeamWithTx(ctx context.Context, tx *sql.Tx, kind, ref, subject, body string, raw []byte, name string) (int, error) {
	now := d.now()
	sent := 0
	from := (&mail.Address{Name: "cvd", Address: d.IntakeAddress()}).String()
	for _, p := range d.Team {
		to := strings.ToLower(p.Email)
		k, problem, err := d.keyFor(ctx, tx, 0, to, now)
		if err != nil {
			return sent, err
		}
		if k == nil {
			d.log().Warn("team notice not sent", "kind", kind, "to", to, "reason", problem)
			continue
		}
		m := &mailOut{from: from, to: to, subject: subject, body: body, messageID: newMessageID(d.Domain)}
		inner := m.inner()
		if raw != nil {
			inner = withAttachment(inner, raw, name)
		}
		sealed, err := crypto.Seal(inner, m.outer(now, d.IntakeAddress()), d.Key, k, now)
		if err != nil {
			return sent, fmt.Errorf("%s notice to %s: %w", kind, to, err)
		}
		if _, err := store.EnqueueTx(ctx, tx, &store.OutMessage{Rcpts: []string{to}, Raw: sealed, Origin: store.OriginNotice, Kind: kind, Ref: ref, CreatedAt: now}); err != nil {
			return sent, err
		}
		sent++
	}
	return sent, nil
}
