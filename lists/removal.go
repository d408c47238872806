package lists

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/store"
)

// Removal takes effect on the queue: when a member is removed or frozen,
// their queued, not yet delivered copies of the list's mail are dropped
// (failed with the reason, never retried); when their key changes, the
// posts among them are sealed again to the new key and the rest dropped.

// dropCopiesTx drops member memberID's queued copies of list l and says
// what it did ("" when there was nothing).
func (s *Service) dropCopiesTx(ctx context.Context, tx *sql.Tx, l *store.List, memberID int64, email, reason string, now time.Time) (*store.DroppedCopies, string, error) {
	d, err := store.DropMemberCopiesTx(ctx, tx, l.Name, memberID, email, reason, now)
	if err != nil {
		return nil, "", err
	}
	if d.Rows > 0 || d.Sending > 0 {
		s.log().Info("queued copies dropped", "list", l.Name, "member_id", memberID, "dropped", d.Rows, "sending", d.Sending, "reason", reason)
	}
	var parts []string
	if d.Rows > 0 {
		parts = append(parts, plural(d.Rows, "queued copy", "queued copies")+" not yet delivered dropped")
	}
	if d.Sending > 0 {
		parts = append(parts, plural(d.Sending, "copy", "copies")+" being sent at this moment may still arrive")
	}
	return d, strings.Join(parts, "; "), nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// keyChangedTx seals the posts of member memberID's queued copies on l
// again to their new key, and drops the other queued mail sealed to the
// old one. It says what it did ("" when there was nothing).
func (s *Service) keyChangedTx(ctx context.Context, tx *sql.Tx, l *store.List, memberID int64, email string, key *crypto.Key, now time.Time) (string, error) {
	d, err := store.DropMemberCopiesTx(ctx, tx, l.Name, memberID, email, "key changed: sealed to the old key", now)
	if err != nil {
		return "", err
	}
	ms, err := store.MembersTx(ctx, tx, l.ID)
	if err != nil {
		return "", err
	}
	anon, err := store.AnonymousMemberTx(ctx, tx, l.ID)
	if err != nil {
		return "", err
	}
	role := ""
	for _, m := range ms {
		if m.ID == memberID {
			role = m.Role
		}
	}
	resealed := 0
	for _, id := range d.Posts {
		p, err := store.PostTx(ctx, tx, id)
		if err != nil {
			return "", err
		}
		raw, err := s.reseal(p.Archive, key, now, s.viewFor(l, anon, role, p.Sender), s.outerSubject(l.Name, email))
		if err != nil {
			return "", fmt.Errorf("re-seal post %d: %w", id, err)
		}
		qid, err := store.EnqueueTx(ctx, tx, &store.OutMessage{Rcpts: []string{email}, Raw: raw, Origin: store.OriginRelay, Kind: "post", Ref: l.Name, CreatedAt: now})
		if err != nil {
			return "", err
		}
		if err := store.AddPostCopyTx(ctx, tx, id, memberID, qid); err != nil {
			return "", err
		}
		resealed++
	}
	var parts []string
	if resealed > 0 {
		parts = append(parts, plural(resealed, "queued copy", "queued copies")+" sealed again to the new key")
	}
	if n := d.Rows - resealed; n > 0 {
		parts = append(parts, plural(n, "queued notice", "queued notices")+" sealed to the old key dropped")
	}
	if d.Sending > 0 {
		parts = append(parts, plural(d.Sending, "copy", "copies")+" sealed to the old key being sent at this moment may still arrive")
	}
	if d.Rows > 0 {
		s.log().Info("queued copies re-sealed after a key change", "list", l.Name, "member_id", memberID, "resealed", resealed, "dropped", d.Rows-resealed)
	}
	return strings.Join(parts, "; "), nil
}

// globalKeyChangedTx runs keyChangedTx on every list where email is an
// active member whose key there is its pinned one (no list-only key).
func (s *Service) globalKeyChangedTx(ctx context.Context, tx *sql.Tx, email string, key *crypto.Key, now time.Time) ([]string, error) {
	var out []string
	names, err := store.MemberListsTx(ctx, tx, email, store.ListIncident)
	if err != nil {
		return nil, err
	}
	{
		for _, name := range names {
			l, err := store.ListByNameTx(ctx, tx, name)
			if err != nil {
				return nil, err
			}
			if _, err := store.ListKeyTx(ctx, tx, l.ID, email); err == nil {
				continue
			} else if !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
			ms, err := store.MembersTx(ctx, tx, l.ID)
			if err != nil {
				return nil, err
			}
			for _, m := range ms {
				if m.Email != email || m.State != store.MemberActive {
					continue
				}
				text, err := s.keyChangedTx(ctx, tx, l, m.ID, email, key, now)
				if err != nil {
					return nil, err
				}
				if text != "" {
					out = append(out, l.Name+": "+text)
				}
			}
		}
	}
	return out, nil
}

// RemoveMember removes email from the list (an active or frozen member)
// and drops their queued copies; it returns what was dropped.
func (s *Service) RemoveMember(ctx context.Context, listName, email, actor string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var text string
	err := s.DB.Write(ctx, func(tx *sql.Tx) error {
		l, err := store.ListByNameTx(ctx, tx, listName)
		if err != nil {
			return err
		}
		ms, err := store.MembersTx(ctx, tx, l.ID)
		if err != nil {
			return err
		}
		now := s.now()
		for _, m := range ms {
			if m.Email != email || m.State == store.MemberRemoved {
				continue
			}
			if err := store.SetMemberStateTx(ctx, tx, m.ID, store.MemberRemoved, "removed by "+actor, now); err != nil {
				return err
			}
			_, text, err = s.dropCopiesTx(ctx, tx, l, m.ID, email, "member removed by "+actor, now)
			return err
		}
		return fmt.Errorf("remove %s from %s: %w", email, l.Name, store.ErrNotFound)
	})
	return text, err
}
