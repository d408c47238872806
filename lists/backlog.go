package lists

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/store"
)

// SendBacklog sends a member every distributed post of the list they do
// not have yet, each re-sealed to their key from the list's archive.
func (s *Service) SendBacklog(ctx context.Context, listName, email string) (result string, err error) {
	err = s.DB.Write(ctx, func(tx *sql.Tx) error {
		l, err := store.ListByNameTx(ctx, tx, listName)
		if err != nil {
			return err
		}
		result, err = s.sendBacklogTx(ctx, tx, l, email, time.Time{}, s.now())
		return err
	})
	return result, err
}

// SendBacklogSinceTx is SendBacklog in the caller's transaction, for the
// posts received at or after since only.
func (s *Service) SendBacklogSinceTx(ctx context.Context, tx *sql.Tx, listName, email string, since, now time.Time) (string, error) {
	l, err := store.ListByNameTx(ctx, tx, listName)
	if err != nil {
		return "", err
	}
	return s.sendBacklogTx(ctx, tx, l, email, since, now)
}

func (s *Service) sendBacklogTx(ctx context.Context, tx *sql.Tx, l *store.List, email string, since, now time.Time) (string, error) {
	members, err := s.loadMembers(ctx, tx, l.ID, now)
	if err != nil {
		return "", err
	}
	var m *member
	for _, mm := range members {
		if mm.Email == email {
			m = mm
		}
	}
	if m == nil {
		return "refused: " + email + " is not an active member", nil
	}
	if m.problem != "" {
		return "refused: " + email + " has no usable key", nil
	}
	posts, err := store.PostsTx(ctx, tx, l.ID)
	if err != nil {
		return "", err
	}
	anon, err := store.AnonymousMemberTx(ctx, tx, l.ID)
	if err != nil {
		return "", err
	}
	sent := 0
	for _, p := range posts {
		if p.Status != PostDistributed || len(p.Archive) == 0 || p.ReceivedAt.Before(since) {
			continue
		}
		has, err := store.HasPostCopyTx(ctx, tx, p.ID, m.ID)
		if err != nil {
			return "", err
		}
		if has || p.Sender == m.Email {
			continue
		}
		raw, err := s.reseal(p.Archive, m.key, now, s.viewFor(l, anon, m.Role, p.Sender), s.outerSubject(l.Name, m.Email))
		if err != nil {
			return "", fmt.Errorf("backlog post %d: %w", p.ID, err)
		}
		qid, err := store.EnqueueTx(ctx, tx, &store.OutMessage{Rcpts: []string{m.Email}, Raw: raw, Origin: store.OriginRelay, Kind: "post", Ref: l.Name, CreatedAt: now})
		if err != nil {
			return "", err
		}
		if err := store.AddPostCopyTx(ctx, tx, p.ID, m.ID, qid); err != nil {
			return "", err
		}
		sent++
	}
	return fmt.Sprintf("ok, sent %d earlier posts to %s", sent, email), nil
}

// viewFor is how a copy of a post by sender is anonymized for a member of
// role, or nil when it is not.
func (s *Service) viewFor(l *store.List, anon, role, sender string) *anonView {
	if anon == "" || !outsider(role) {
		return nil
	}
	return &anonView{list: l, sender: sender == anon}
}

// reseal opens an archived copy with the list key and seals it to key,
// keeping its visible header, anonymized by v when not nil, with outer
// Subject subject when not "".
func (s *Service) reseal(archive []byte, key *crypto.Key, now time.Time, v *anonView, subject string) ([]byte, error) {
	o, err := crypto.Open(archive, []*crypto.Key{s.Key}, []*crypto.Key{s.Key}, now, s.Limits)
	if err != nil {
		return nil, err
	}
	if o.Signature != crypto.Good {
		return nil, fmt.Errorf("archive copy not signed by the list key (%s)", o.Signature)
	}
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(archive)))
	if err != nil {
		return nil, err
	}
	var outer textproto.Header
	for f := h.Fields(); f.Next(); {
		switch strings.ToLower(f.Key()) {
		case "content-type", "mime-version", "content-transfer-encoding", "subject":
			continue
		}
		outer.Add(f.Key(), f.Value())
	}
	ent := o.Entity
	if v != nil {
		s.anonHeader(&outer, v)
		if ent, err = s.anonInner(ent, v); err != nil {
			return nil, err
		}
	}
	return s.sealOne(ent, outer, key, now, subject)
}
