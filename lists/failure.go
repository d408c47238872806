package lists

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/cvd-project/cvd/store"
)

// DeliveryFailed counts a permanent delivery failure (a 5xx reply or a
// bounce) of a list copy to rcpt. After FreezeAfter failures in a row the
// member is frozen; the coordinators are told each time, encrypted.
// Failures of cvd's own notices are only logged, so a notice never causes
// another.
func (s *Service) DeliveryFailed(ctx context.Context, kind, listName, rcpt, reply string) error {
	if kind != "post" || listName == "" {
		s.log().Warn("notice not delivered", "kind", kind, "list", listName)
		return nil
	}
	now := s.now()
	rcpt = strings.ToLower(rcpt)
	return s.DB.Write(ctx, func(tx *sql.Tx) error {
		l, err := store.ListByNameTx(ctx, tx, listName)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		members, err := s.loadMembers(ctx, tx, l.ID, now)
		if err != nil {
			return err
		}
		var m *member
		for _, mm := range members {
			if mm.Email == rcpt {
				m = mm
			}
		}
		if m == nil {
			return nil // removed or already frozen
		}
		n, err := store.MemberFailureTx(ctx, tx, m.ID, false)
		if err != nil {
			return err
		}
		m.problem = "delivery failed: " + reply
		frozen := n >= s.freezeAfter()
		if frozen {
			if err := store.SetMemberStateTx(ctx, tx, m.ID, store.MemberFrozen, "delivery failed", now); err != nil {
				return err
			}
			s.log().Warn("member frozen", "list", l.Name, "member_id", m.ID, "reason", "delivery failed")
		}
		return s.queueNotice(ctx, tx, l, members, s.keyProblemNotice(l, m, n, frozen), now)
	})
}
