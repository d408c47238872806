package lists

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/cvd-project/cvd/store"
)

// quietKinds are notices whose failure is only logged, so that a notice
// about a failure never causes another.
var quietKinds = map[string]bool{"missed": true, "keyproblem": true, "undelivered": true, "receipt": true}

// DeliveryFailed handles a permanent delivery failure (a 5xx reply or a
// bounce) of a message about list listName to rcpt. A list copy counts
// against the member: after FreezeAfter failures in a row they are frozen;
// the coordinators are told each time, encrypted. A failed notice of the
// incident (a pre-notification, say) is reported to the coordinators.
// Failures of the reports themselves are only logged, so there is no loop.
func (s *Service) DeliveryFailed(ctx context.Context, kind, listName, rcpt, reply string) error {
	if listName == "" || quietKinds[kind] {
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
		if l.Kind != store.ListIncident {
			return nil
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
		if kind != "post" || m == nil {
			text := mustRender("undelivered", map[string]any{"List": l.Name, "Kind": kind, "Email": rcpt, "Reply": reply})
			return s.queueNotice(ctx, tx, l, members, &notice{kind: "undelivered", origin: store.OriginNotice, coordinators: true, text: text}, now)
		}
		n, err := store.MemberFailureTx(ctx, tx, m.ID, false)
		if err != nil {
			return err
		}
		frozen := n >= s.freezeAfter()
		reason := "delivery failed: " + reply
		if frozen {
			if err := store.SetMemberStateTx(ctx, tx, m.ID, store.MemberFrozen, "delivery failed", now); err != nil {
				return err
			}
			s.log().Warn("member frozen", "list", l.Name, "member_id", m.ID, "reason", "delivery failed")
			_, dropped, err := s.dropCopiesTx(ctx, tx, l, m.ID, m.Email, "member frozen: delivery failed", now)
			if err != nil {
				return err
			}
			if dropped != "" {
				reason += "; " + dropped
			}
		}
		// The member's key is not in question: a coordinator whose copy
		// was refused (too big, say) is told too, by a small notice.
		return s.queueNotice(ctx, tx, l, members, s.copyProblemNotice(l, m, reason, true, n, frozen), now)
	})
}
