package lists

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/store"
	"github.com/cvd-project/cvd/templates"
)

// notice is a message cvd writes itself.
type notice struct {
	kind string
	text *templates.Rendered
	// plainTo receives the notice unencrypted: only notices without
	// content (a missed message, a receipt) go this way.
	plainTo []string
	// coordinators get the notice sealed to their keys.
	coordinators bool
	// members get the notice sealed to their keys (instead of the
	// coordinators).
	members []*member
	origin  store.Origin
}

func (s *Service) missedNotice(l *store.List, m *member) *notice {
	return &notice{kind: "missed", origin: store.OriginNotice, plainTo: []string{m.Email},
		text: mustRender("missed", map[string]any{"List": l.Name, "ListAddress": s.Address(l.Name), "Reason": m.problem, "Email": m.Email}),
	}
}

func (s *Service) keyProblemNotice(l *store.List, m *member, failures int, frozen bool) *notice {
	return s.copyProblemNotice(l, m, m.problem, false, failures, frozen)
}

// copyProblemNotice tells the coordinators that m did not get a post:
// for a reason about the key, or (delivery) refused at delivery.
func (s *Service) copyProblemNotice(l *store.List, m *member, reason string, delivery bool, failures int, frozen bool) *notice {
	return &notice{kind: "keyproblem", origin: store.OriginNotice, coordinators: true,
		text: mustRender("keyproblem", map[string]any{"List": l.Name, "Email": m.Email, "Role": m.Role, "Reason": reason,
			"Frozen": frozen, "Failures": failures, "Delivery": delivery}),
	}
}

func (s *Service) receipt(l *store.List, sender string) *notice {
	return &notice{kind: "receipt", origin: store.OriginReply, plainTo: []string{sender},
		text: mustRender("receipt", map[string]any{"Address": s.Address(l.Name), "Intake": s.IntakeAddress()}),
	}
}

// mustRender renders an embedded notice; the embedded notices are tested
// to render, so an error here is a bug.
func mustRender(name string, data any) *templates.Rendered {
	r, err := templates.Render(name, data)
	if err != nil {
		panic(err)
	}
	return r
}

// queueNotice queues n: plainly to its plain recipients, sealed to the
// list's coordinators.
func (s *Service) queueNotice(ctx context.Context, tx *sql.Tx, l *store.List, members []*member, n *notice, now time.Time) error {
	from := (&mail.Address{Name: "cvd for " + l.Name, Address: s.Address(l.Name)}).String()
	for _, to := range n.plainTo {
		var b bytes.Buffer
		writeField(&b, "From", from)
		writeField(&b, "To", to)
		writeField(&b, "Subject", n.text.Subject)
		writeField(&b, "Date", now.Format(time.RFC1123Z))
		writeField(&b, "Message-ID", "<"+randomToken()+"@"+s.Domain+">")
		writeField(&b, "MIME-Version", "1.0")
		writeField(&b, "Content-Type", "text/plain; charset=utf-8")
		writeField(&b, "Content-Transfer-Encoding", "8bit")
		writeField(&b, "X-Loop", s.Address(l.Name))
		b.Write(crlf)
		b.WriteString(strings.ReplaceAll(n.text.Body, "\n", "\r\n"))
		if _, err := store.EnqueueTx(ctx, tx, &store.OutMessage{Rcpts: []string{to}, Raw: b.Bytes(), Origin: n.origin,
			Kind: n.kind, Ref: l.Name, CreatedAt: now}); err != nil {
			return err
		}
	}
	sealTo := n.members
	if sealTo == nil && n.coordinators {
		for _, m := range members {
			if m.Role == RoleCoordinator {
				sealTo = append(sealTo, m)
			}
		}
	}
	if sealTo == nil {
		return nil
	}
	var to []*member
	var keys []*crypto.Key
	for _, m := range sealTo {
		if m.problem == "" {
			to = append(to, m)
			keys = append(keys, m.key)
		}
	}
	if len(to) == 0 {
		s.log().Warn("notice not sent: the list has no active coordinator with a usable key", "list", l.Name, "notice", n.kind)
		return nil
	}
	var inner bytes.Buffer
	writeField(&inner, "Subject", n.text.Subject)
	writeField(&inner, "From", from)
	writeField(&inner, "To", s.Address(l.Name))
	writeField(&inner, "Content-Type", "text/plain; charset=utf-8")
	writeField(&inner, "Content-Transfer-Encoding", "8bit")
	inner.Write(crlf)
	inner.WriteString(strings.ReplaceAll(n.text.Body, "\n", "\r\n"))
	var outer textproto.Header
	outer.Set("From", from)
	outer.Set("To", s.Address(l.Name))
	outer.Set("Date", now.Format(time.RFC1123Z))
	outer.Set("Message-Id", "<"+randomToken()+"@"+s.Domain+">")
	outer.Set("X-Loop", s.Address(l.Name))
	copies, err := crypto.SealFanout(inner.Bytes(), outer, s.Key, keys, now)
	if err != nil {
		return fmt.Errorf("seal %s notice: %w", n.kind, err)
	}
	for i, m := range to {
		if _, err := store.EnqueueTx(ctx, tx, &store.OutMessage{Rcpts: []string{m.Email}, Raw: copies[i], Origin: store.OriginNotice,
			Kind: n.kind, Ref: l.Name, CreatedAt: now}); err != nil {
			return err
		}
	}
	return nil
}

// autocrypt returns the Autocrypt header value advertising the list key.
func (s *Service) autocrypt(addr string) (string, error) {
	b, err := s.Key.Public().BinaryPublic()
	if err != nil {
		return "", err
	}
	return "addr=" + addr + "; prefer-encrypt=mutual; keydata=" + base64.StdEncoding.EncodeToString(b), nil
}
