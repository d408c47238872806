package embargo

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/store"
	"github.com/cvd-project/cvd/templates"
)

// utc formats a time as every notice states it.
func utc(t time.Time) string {
	if t.IsZero() {
		return "not set"
	}
	return t.UTC().Format("Monday 2006-01-02 15:04 UTC")
}

func render(name string, data map[string]any) (*templates.Rendered, error) {
	r, err := templates.Render(name, data)
	if err != nil {
		return nil, fmt.Errorf("notice %s: %w", name, err)
	}
	return r, nil
}

func newMessageID(domain string) string {
	var b [12]byte
	rand.Read(b[:])
	return "<" + hex.EncodeToString(b[:]) + "@" + domain + ">"
}

func writeField(b *bytes.Buffer, k, v string) {
	b.WriteString(k + ": " + v + "\r\n")
}

func crlfBody(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// mailOut is one notice ready to build.
type mailOut struct {
	from, to, replyTo, subject, body string
	messageID, inReplyTo             string
}

func (m *mailOut) inner() []byte {
	var b bytes.Buffer
	writeField(&b, "Subject", templates.EncodeHeader(m.subject))
	writeField(&b, "From", m.from)
	writeField(&b, "To", m.to)
	writeField(&b, "MIME-Version", "1.0")
	writeField(&b, "Content-Type", "text/plain; charset=utf-8")
	writeField(&b, "Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n")
	b.WriteString(crlfBody(m.body))
	return b.Bytes()
}

func (m *mailOut) outer(now time.Time, loop string) textproto.Header {
	var h textproto.Header
	h.Set("From", m.from)
	h.Set("To", m.to)
	h.Set("Subject", templates.EncodeHeader(m.subject))
	h.Set("Date", now.Format(time.RFC1123Z))
	h.Set("Message-Id", m.messageID)
	if m.replyTo != "" {
		h.Set("Reply-To", m.replyTo)
	}
	if m.inReplyTo != "" {
		h.Set("In-Reply-To", m.inReplyTo)
		h.Set("References", m.inReplyTo)
	}
	if loop != "" {
		h.Set("X-Loop", loop)
	}
	return h
}

// plain is the whole unencrypted message.
func (m *mailOut) plain(now time.Time, loop string) ([]byte, error) {
	h := m.outer(now, loop)
	h.Set("MIME-Version", "1.0")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Transfer-Encoding", "8bit")
	var b bytes.Buffer
	if err := textproto.WriteHeader(&b, h); err != nil {
		return nil, err
	}
	b.WriteString(crlfBody(m.body))
	return b.Bytes(), nil
}

// recipient is a member with a key usable now, or the reason there is none.
type recipient struct {
	store.Member
	key     *crypto.Key
	problem string
}

// keyFor returns the usable key of email on list listID (its list-only
// key, else its global pin; 0: the global pin only), or why there is none.
func (d *Desk) keyFor(ctx context.Context, tx *sql.Tx, listID int64, email string, now time.Time) (*crypto.Key, string, error) {
	var pk *store.PublicKey
	var err error
	if listID != 0 {
		pk, err = store.KeyForListTx(ctx, tx, listID, email)
	} else {
		pk, err = store.PinnedKeyTx(ctx, tx, email)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, "no OpenPGP key is known", nil
	}
	if err != nil {
		return nil, "", err
	}
	k, err := crypto.ParseKey(pk.Armored)
	if err != nil {
		return nil, "the pinned key cannot be read", nil
	}
	if err := crypto.CheckUsable(k, now); err != nil {
		return nil, "the pinned key is unusable: " + describeKeyProblem(k, err), nil
	}
	return k, "", nil
}

// members returns the incident list's active members with their keys.
func (o *op) members() ([]recipient, error) {
	l, err := store.ListByNameTx(o.ctx, o.tx, o.in.ID)
	if err != nil {
		return nil, err
	}
	ms, err := store.MembersTx(o.ctx, o.tx, l.ID)
	if err != nil {
		return nil, err
	}
	var out []recipient
	for _, m := range ms {
		if m.State != store.MemberActive {
			continue
		}
		k, problem, err := o.d.keyFor(o.ctx, o.tx, l.ID, m.Email, o.now)
		if err != nil {
			return nil, err
		}
		out = append(out, recipient{Member: m, key: k, problem: problem})
	}
	return out, nil
}

// cvdFrom is the From of notices about the incident.
func (o *op) cvdFrom() string {
	return (&mail.Address{Name: "cvd for " + o.in.ID, Address: o.d.ListAddress(o.in.ID)}).String()
}

// sealToMembers seals one notice to every active member that keep
// selects, each copy encrypted to that member only, and queues them (a
// list-kind downstream's copy with its "[vs]" outer Subject). It returns
// who got it and who could not (no usable key).
func (o *op) sealToMembers(kind string, r *templates.Rendered, keep func(recipient) bool) (sent, missed []string, err error) {
	return o.sealNotice(kind, r.Subject, r.Body, nil, keep)
}

// sendOne queues a notice to one address: encrypted to its pinned key when
// usable, else plain when plainOK (notices without embargoed content),
// else not at all (returned false with the reason).
func (o *op) sendOne(kind, to string, r *templates.Rendered, origin store.Origin, plainOK bool, inReplyTo string) (bool, string, error) {
	l, err := store.ListByNameTx(o.ctx, o.tx, o.in.ID)
	if err != nil {
		return false, "", err
	}
	k, problem, err := o.d.keyFor(o.ctx, o.tx, l.ID, to, o.now)
	if err != nil {
		return false, "", err
	}
	list := o.d.ListAddress(o.in.ID)
	m := &mailOut{from: o.cvdFrom(), to: to, replyTo: list, subject: r.Subject, body: r.Body,
		messageID: newMessageID(o.d.Domain), inReplyTo: inReplyTo}
	var raw []byte
	switch {
	case k != nil:
		raw, err = crypto.Seal(m.inner(), m.outer(o.now, list), o.d.Key, k, o.now)
	case plainOK:
		raw, err = m.plain(o.now, list)
	default:
		return false, problem, nil
	}
	if err != nil {
		return false, "", fmt.Errorf("%s notice to %s: %w", kind, to, err)
	}
	if _, err := store.EnqueueTx(o.ctx, o.tx, &store.OutMessage{Rcpts: []string{to}, Raw: raw, Origin: origin, Kind: kind, Ref: o.in.ID, CreatedAt: o.now}); err != nil {
		return false, "", err
	}
	if err := store.AddIncidentThreadTx(o.ctx, o.tx, m.messageID, o.in.ID); err != nil {
		return false, "", err
	}
	return true, "", nil
}
