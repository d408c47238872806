package lists

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"mime"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/store"
	"github.com/cvd-project/cvd/templates"
)

// AnnounceList is the name of the public announce list.
const AnnounceList = "announce"

// ConfirmTTL is how long a subscription or unsubscription request waits
// for its confirmation.
const ConfirmTTL = 72 * time.Hour

// confirmEvery bounds confirmation mails to one address: a new request
// within this time of the last one sends nothing (subscription bombing).
const confirmEvery = time.Hour

// AnnounceAddress is announce@DOMAIN.
func (s *Service) AnnounceAddress() string { return AnnounceLocalPart + "@" + s.Domain }

func (s *Service) announceTagAddress(tag string) string {
	return AnnounceLocalPart + "+" + tag + "@" + s.Domain
}

// UnsubscribeURL is the RFC 8058 one-click address of a subscriber's token.
func (s *Service) UnsubscribeURL(token string) string {
	base := s.WebBase
	if base == "" {
		base = "https://" + s.Domain
	}
	return strings.TrimSuffix(base, "/") + "/unsubscribe/" + token
}

// EnsureAnnounceList creates the announce list when it does not exist.
func (s *Service) EnsureAnnounceList(ctx context.Context) error {
	_, err := s.CreateList(ctx, AnnounceList, store.ListAnnounce, s.projectName()+" security announcements")
	if err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	return nil
}

// HandleAnnounce processes mail to announce@DOMAIN or announce+TAG@DOMAIN:
// posts by the list's coordinators, subscription requests and their
// confirmations. Nothing here ever answers with the content of the mail.
func (s *Service) HandleAnnounce(ctx context.Context, tag string, sm *store.SpooledMessage, rcpt string) error {
	now := s.now()
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(sm.Raw)))
	if err != nil {
		return s.markRcpt(ctx, sm.ID, rcpt, store.SpoolFailed, "unreadable header")
	}
	from, ok := parseFrom(h)
	if !ok || sm.MailFrom == "" || !ShouldAutoReply(h, sm.MailFrom) {
		return s.markRcpt(ctx, sm.ID, rcpt, store.SpoolFailed, "automatic or sender-less mail to the announce list")
	}
	var state, reason string
	err = s.DB.Write(ctx, func(tx *sql.Tx) error {
		l, err := store.ListByNameTx(ctx, tx, AnnounceList)
		if err != nil {
			return err
		}
		switch {
		case tag == "":
			state, reason, err = s.announcePostTx(ctx, tx, l, sm, h, now)
		case tag == "subscribe" || tag == "unsubscribe":
			state, reason, err = s.requestTx(ctx, tx, l, tag, from.Address, now)
		case strings.HasPrefix(tag, "confirm-"):
			state, reason, err = s.confirmTx(ctx, tx, l, strings.TrimPrefix(tag, "confirm-"), now)
		default:
			state, reason = store.SpoolFailed, "unknown announce address"
		}
		if err != nil {
			return err
		}
		return store.MarkRcptTx(ctx, tx, sm.ID, rcpt, state, reason)
	})
	if err != nil {
		return fmt.Errorf("announce mail (spool %d): %w", sm.ID, err)
	}
	s.log().Info("announce mail", "spool", sm.ID, "tag", strings.SplitN(tag, "-", 2)[0], "state", state, "reason", reason)
	return nil
}

func (s *Service) markRcpt(ctx context.Context, id int64, rcpt, state, reason string) error {
	return s.DB.Write(ctx, func(tx *sql.Tx) error { return store.MarkRcptTx(ctx, tx, id, rcpt, state, reason) })
}

// requestTx records a subscribe or unsubscribe request and mails a
// confirmation to the address (not to whoever sent the request).
func (s *Service) requestTx(ctx context.Context, tx *sql.Tx, l *store.List, action, email string, now time.Time) (string, string, error) {
	m, err := s.activeMember(ctx, tx, l, email)
	if err != nil {
		return "", "", err
	}
	// A coordinator receives the announcements and cannot unsubscribe:
	// an administrator removes coordinators.
	if action == "subscribe" && m != nil || action == "unsubscribe" && (m == nil || m.Role != RoleSubscriber) {
		return store.SpoolDone, action + ": nothing to do", nil
	}
	last, err := store.LatestListTokenTx(ctx, tx, l.ID, email, action)
	if err == nil && now.Sub(last.CreatedAt) < confirmEvery {
		return store.SpoolDone, action + ": confirmation sent recently", nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", "", err
	}
	t := &store.ListToken{Token: randomToken() + randomToken(), ListID: l.ID, Email: email, Action: action, CreatedAt: now, ExpiresAt: now.Add(ConfirmTTL)}
	if err := store.AddListTokenTx(ctx, tx, t); err != nil {
		return "", "", err
	}
	confirm := s.announceTagAddress("confirm-" + t.Token)
	text := mustRender(action+"-confirm", map[string]any{"Domain": s.Domain, "Email": email, "ListAddress": s.AnnounceAddress(),
		"ConfirmAddress": confirm, "Expires": t.ExpiresAt.Format("2006-01-02 15:04 UTC")})
	if err := s.queuePlain(ctx, tx, l, action+"-confirm", email, confirm, text, now); err != nil {
		return "", "", err
	}
	return store.SpoolDone, action + ": confirmation sent", nil
}

// activeMember returns the active member of l with address email, or nil.
func (s *Service) activeMember(ctx context.Context, tx *sql.Tx, l *store.List, email string) (*store.Member, error) {
	ms, err := store.MembersTx(ctx, tx, l.ID)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if m.Email == strings.ToLower(email) && m.State == store.MemberActive {
			return &m, nil
		}
	}
	return nil, nil
}

// confirmTx carries out a confirmed request.
func (s *Service) confirmTx(ctx context.Context, tx *sql.Tx, l *store.List, token string, now time.Time) (string, string, error) {
	t, err := store.ListTokenTx(ctx, tx, token)
	if errors.Is(err, store.ErrNotFound) || err == nil && (t.ListID != l.ID || t.Action != "subscribe" && t.Action != "unsubscribe") {
		return store.SpoolFailed, "confirmation: unknown token", nil
	}
	if err != nil {
		return "", "", err
	}
	if err := store.DeleteListTokenTx(ctx, tx, token); err != nil {
		return "", "", err
	}
	if now.After(t.ExpiresAt) {
		return store.SpoolFailed, "confirmation: token expired", nil
	}
	if t.Action == "subscribe" {
		if err := s.subscribeTx(ctx, tx, l, t.Email, now); err != nil {
			return "", "", err
		}
		return store.SpoolDone, "subscribed", nil
	}
	if err := s.unsubscribeTx(ctx, tx, l, t.Email, "unsubscribed by mail", now); err != nil {
		return "", "", err
	}
	return store.SpoolDone, "unsubscribed", nil
}

func (s *Service) subscribeTx(ctx context.Context, tx *sql.Tx, l *store.List, email string, now time.Time) error {
	m := &store.Member{ListID: l.ID, Email: email, Role: RoleSubscriber, AddedAt: now}
	if err := store.AddMemberTx(ctx, tx, m); err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	one := &store.ListToken{Token: randomToken() + randomToken(), ListID: l.ID, Email: email, Action: "oneclick", CreatedAt: now}
	if err := store.AddListTokenTx(ctx, tx, one); err != nil {
		return err
	}
	text := mustRender("subscribed", map[string]any{"Domain": s.Domain, "Email": email, "Fingerprint": s.Key.Fingerprint(),
		"UnsubscribeAddress": s.announceTagAddress("unsubscribe")})
	return s.queuePlain(ctx, tx, l, "subscribed", email, "", text, now)
}

// unsubscribeTx removes the subscriber email from l. It removes the
// subscriber role only: a coordinator's tokens (a one-click link in a
// forwarded announcement, say) leave the coordinator in place.
func (s *Service) unsubscribeTx(ctx context.Context, tx *sql.Tx, l *store.List, email, reason string, now time.Time) error {
	m, err := s.activeMember(ctx, tx, l, email)
	if err != nil || m == nil {
		return err
	}
	if m.Role != RoleSubscriber {
		s.log().Warn("unsubscribe refused: not a subscriber", "list", l.Name, "member_id", m.ID, "role", m.Role, "how", reason)
		return nil
	}
	if err := store.SetMemberStateTx(ctx, tx, m.ID, store.MemberRemoved, reason, now); err != nil {
		return err
	}
	text := mustRender("unsubscribed", map[string]any{"Domain": s.Domain, "Email": m.Email})
	return s.queuePlain(ctx, tx, l, "unsubscribed", m.Email, "", text, now)
}

// OneClickUnsubscribe removes the subscriber of an RFC 8058 token (the
// web endpoint calls it for "List-Unsubscribe=One-Click" POSTs). It
// reports whether the token was known.
func (s *Service) OneClickUnsubscribe(ctx context.Context, token string) (bool, error) {
	known := false
	err := s.DB.Write(ctx, func(tx *sql.Tx) error {
		t, err := store.ListTokenTx(ctx, tx, token)
		if errors.Is(err, store.ErrNotFound) || err == nil && t.Action != "oneclick" {
			return nil
		}
		if err != nil {
			return err
		}
		known = true
		l, err := store.ListByNameTx(ctx, tx, AnnounceList)
		if err != nil {
			return err
		}
		return s.unsubscribeTx(ctx, tx, l, t.Email, "one-click unsubscribe", s.now())
	})
	return known, err
}

// queuePlain queues a plain notice about the list (confirmations and the
// like: no embargoed content ever goes this way).
func (s *Service) queuePlain(ctx context.Context, tx *sql.Tx, l *store.List, kind, to, replyTo string, text *templates.Rendered, now time.Time) error {
	var b bytes.Buffer
	writeField(&b, "From", (&mail.Address{Name: s.projectName() + " security announcements", Address: s.AnnounceAddress()}).String())
	writeField(&b, "To", to)
	if replyTo != "" {
		writeField(&b, "Reply-To", replyTo)
	}
	writeField(&b, "Subject", text.Subject)
	writeField(&b, "Date", now.Format(time.RFC1123Z))
	writeField(&b, "Message-ID", "<"+randomToken()+"@"+s.Domain+">")
	writeField(&b, "MIME-Version", "1.0")
	writeField(&b, "Content-Type", "text/plain; charset=utf-8")
	writeField(&b, "Content-Transfer-Encoding", "8bit")
	writeField(&b, "X-Loop", s.AnnounceAddress())
	b.Write(crlf)
	b.WriteString(strings.ReplaceAll(text.Body, "\n", "\r\n"))
	_, err := store.EnqueueTx(ctx, tx, &store.OutMessage{Rcpts: []string{to}, Raw: b.Bytes(), Origin: store.OriginReply, Kind: kind, Ref: l.Name, CreatedAt: now})
	return err
}

// Reasons an announcement is refused, as logged and as told to the
// coordinators.
const (
	refuseEncrypted = "it is encrypted: the announce list publishes clear-signed mail only, and cvd never decrypts mail sent to it"
	refuseNoList    = "the signed part does not name the announce list: begin the signed text with the line x-list: announce"
)

// announcement is the verdict on a post to announce@DOMAIN.
type announcement struct {
	opened *crypto.Opened
	// entity is what to publish: the signed part without the x-list line
	// and without the poster's own header fields.
	entity []byte
	// reason is why it is refused; "" when it may be published.
	reason string
	// fromCoordinator: the mail claims to come from, or is signed by, a
	// coordinator, so the coordinators are told of a refusal (a
	// stranger's mail is only logged).
	fromCoordinator bool
	from            string
}

// announcePostTx takes a post to announce@DOMAIN. It counts only when it
// is clear-signed (never encrypted: cvd opens it without any decryption
// key) with a good signature by an announce coordinator's pinned key, its
// From (the protected From when it has RFC 9788 header protection) is that
// coordinator's own address, its signed part names announce@DOMAIN, and
// the signature is fresh and was never used before. A refusal is logged
// and, when the mail comes from a coordinator's address or key, told to
// the coordinators without its content.
func (s *Service) announcePostTx(ctx context.Context, tx *sql.Tx, l *store.List, sm *store.SpooledMessage, outer textproto.Header, now time.Time) (string, string, error) {
	members, err := s.loadMembers(ctx, tx, l.ID, now)
	if err != nil {
		return "", "", err
	}
	a := s.judgeAnnouncement(sm.Raw, outer, members, now)
	if a.reason == "" {
		a.reason, err = s.useSignatureTx(ctx, tx, a.opened, now)
		if err != nil {
			return "", "", err
		}
	}
	if a.reason != "" {
		if a.fromCoordinator {
			n := &notice{kind: "announce-refused", origin: store.OriginNotice, coordinators: true,
				text: mustRender("announce-refused", map[string]any{"Address": s.AnnounceAddress(), "From": templates.HeaderSafe(a.from),
					"Received": sm.ReceivedAt.UTC().Format("Monday 2006-01-02 15:04 UTC"), "Reason": a.reason})}
			if err := s.queueNotice(ctx, tx, l, members, n, now); err != nil {
				return "", "", err
			}
		}
		return store.SpoolFailed, "announce post refused: " + a.reason, nil
	}
	n, err := s.AnnounceTx(ctx, tx, a.entity, store.OriginRelay, now)
	if err != nil {
		return "", "", err
	}
	return store.SpoolDone, fmt.Sprintf("announced to %d", n), nil
}

// judgeAnnouncement applies the announce list's rules to raw, except the
// one-use rule (useSignatureTx), which writes.
func (s *Service) judgeAnnouncement(raw []byte, outer textproto.Header, members []*member, now time.Time) *announcement {
	a := &announcement{}
	coordinators := map[string]*member{}
	var verify []*crypto.Key
	for _, m := range members {
		if m.Role == RoleCoordinator {
			coordinators[m.Email] = m
			if m.key != nil {
				verify = append(verify, m.key)
			}
		}
	}
	from, _ := parseFrom(outer)
	claim := func(f *mail.Address) {
		if f != nil {
			a.from = f.Address
			if coordinators[f.Address] != nil {
				a.fromCoordinator = true
			}
		}
	}
	claim(from)
	if a.from == "" {
		a.from = "an unknown sender"
	}
	// An armored PGP message is encrypted or opaque-signed: never clear.
	if bytes.Contains(raw, []byte("-----BEGIN PGP MESSAGE-----")) {
		a.reason = refuseEncrypted
		return a
	}
	o, err := crypto.Open(raw, nil, verify, now, s.Limits)
	switch {
	case errors.Is(err, crypto.ErrDecrypt):
		a.reason = refuseEncrypted
		return a
	case errors.Is(err, crypto.ErrLimit):
		a.reason = "it exceeds a limit: " + err.Error()
		return a
	case err != nil:
		a.reason = "it could not be opened (malformed MIME or OpenPGP)"
		return a
	case o.Encrypted:
		a.reason = refuseEncrypted
		return a
	}
	a.opened = o
	if o.Protection != "" {
		if f, ok := parseFrom(o.Protected); ok {
			from = f
			claim(f)
		}
	}
	var signer *member
	for _, m := range coordinators {
		if o.Signature == crypto.Good && m.key != nil && strings.EqualFold(o.Signer, m.key.Fingerprint()) {
			signer = m
			a.fromCoordinator = true
		}
	}
	switch {
	case signer == nil:
		a.reason = "it is not signed by an announce coordinator (" + o.Signature.String() + ")"
		return a
	case from == nil || from.Address != signer.Email:
		a.reason = "its From address (" + a.from + ") is not the address of the coordinator whose key signed it"
		return a
	}
	kws, stripped := stripKeywords(o.Entity, 0)
	named := ""
	for _, kw := range kws {
		if kw.Name != "list" {
			a.reason = "x-" + kw.Name + " is not a command of the announce list"
			return a
		}
		named = strings.ToLower(kw.Args)
	}
	if named != "" && named != AnnounceList && !strings.EqualFold(named, s.AnnounceAddress()) {
		a.reason = "the signed part names another list (x-list: " + templates.HeaderSafe(named) + ")"
		return a
	}
	if o.Protection != "" && (o.Protected.Has("To") || o.Protected.Has("Cc")) {
		if !s.namesAnnounce(o.Protected) {
			a.reason = "the signed To/Cc name other addresses, not " + s.AnnounceAddress()
			return a
		}
	} else if named == "" {
		a.reason = refuseNoList
		return a
	}
	a.entity = o.Entity
	if kws != nil {
		a.entity = stripped
	}
	a.entity = publishable(a.entity, headerValue(outer, "Subject"))
	return a
}

// namesAnnounce reports whether the To or Cc fields of h name
// announce@DOMAIN.
func (s *Service) namesAnnounce(h textproto.Header) bool {
	for _, k := range []string{"To", "Cc"} {
		for _, v := range h.Values(k) {
			as, err := mail.ParseAddressList(v)
			if err != nil {
				continue
			}
			for _, ad := range as {
				if strings.EqualFold(ad.Address, s.AnnounceAddress()) {
					return true
				}
			}
		}
	}
	return false
}

// publishable keeps the Content-* fields and the Subject of a signed
// entity (the poster's From, To and the like are the project's on the
// announcement), and takes subject, the unsigned outer Subject, when the
// signed part has none.
func publishable(ent []byte, subject string) []byte {
	head, body := splitEntity(ent)
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return ent
	}
	var out bytes.Buffer
	hasSubject := false
	for f := h.Fields(); f.Next(); {
		k := strings.ToLower(f.Key())
		switch {
		case k == "subject":
			hasSubject = true
		case k == "content-type":
			if mt, params, err := mime.ParseMediaType(f.Value()); err == nil {
				delete(params, "hp")
				delete(params, "protected-headers")
				writeField(&out, "Content-Type", mime.FormatMediaType(mt, params))
				continue
			}
		case !strings.HasPrefix(k, "content-"):
			continue
		}
		raw, err := f.Raw()
		if err != nil {
			return ent
		}
		out.Write(raw)
	}
	if !hasSubject && subject != "" && subject != crypto.ObscuredSubject && subject != "..." {
		writeField(&out, "Subject", templates.HeaderSafe(subject))
	}
	out.Write(crlf)
	out.Write(body)
	return out.Bytes()
}

// AnnounceTx publishes inner (a MIME entity whose header carries the
// Subject) on the announce list inside tx: it is clear-signed once with
// the project key (PGP/MIME multipart/signed), archived, and queued to
// every subscriber with their own unsubscribe headers outside the signed
// part. It returns the number of copies queued.
func (s *Service) AnnounceTx(ctx context.Context, tx *sql.Tx, inner []byte, origin store.Origin, now time.Time) (int, error) {
	l, err := store.ListByNameTx(ctx, tx, AnnounceList)
	if err != nil {
		return 0, err
	}
	mid := "<" + randomToken() + "@" + s.Domain + ">"
	var outer textproto.Header
	outer.Set("From", (&mail.Address{Name: s.projectName() + " security team", Address: s.IntakeAddress()}).String())
	outer.Set("To", s.AnnounceAddress())
	outer.Set("Date", now.Format(time.RFC1123Z))
	outer.Set("Message-Id", mid)
	outer.Set("List-Id", "<"+AnnounceLocalPart+"."+s.Domain+">")
	outer.Set("List-Post", "NO")
	outer.Set("List-Help", "<mailto:"+s.announceTagAddress("subscribe")+"?subject=help>")
	outer.Set("List-Subscribe", "<mailto:"+s.announceTagAddress("subscribe")+">")
	outer.Set("Precedence", "list")
	outer.Set("X-Loop", s.AnnounceAddress())
	signed, err := crypto.SignClear(inner, outer, s.Key, now)
	if err != nil {
		return 0, fmt.Errorf("sign announcement: %w", err)
	}
	post := &store.Post{ListID: l.ID, MessageID: mid, Sender: s.IntakeAddress(), Status: PostDistributed,
		Signature: crypto.Good.String(), Signer: s.Key.Fingerprint(), ReceivedAt: now, Archive: signed}
	if err := store.AddPostTx(ctx, tx, post); err != nil {
		return 0, err
	}
	ms, err := store.MembersTx(ctx, tx, l.ID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range ms {
		if m.State != store.MemberActive {
			continue
		}
		t, err := store.LatestListTokenTx(ctx, tx, l.ID, m.Email, "oneclick")
		if errors.Is(err, store.ErrNotFound) {
			t = &store.ListToken{Token: randomToken() + randomToken(), ListID: l.ID, Email: m.Email, Action: "oneclick", CreatedAt: now}
			err = store.AddListTokenTx(ctx, tx, t)
		}
		if err != nil {
			return 0, err
		}
		var b bytes.Buffer
		writeField(&b, "List-Unsubscribe", "<"+s.UnsubscribeURL(t.Token)+">, <mailto:"+s.announceTagAddress("unsubscribe")+"?subject=unsubscribe>")
		writeField(&b, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
		b.Write(signed)
		qid, err := store.EnqueueTx(ctx, tx, &store.OutMessage{Rcpts: []string{m.Email}, Raw: b.Bytes(), Origin: origin, Kind: "announce", Ref: l.Name, CreatedAt: now, Urgent: true})
		if err != nil {
			return 0, err
		}
		if err := store.AddPostCopyTx(ctx, tx, post.ID, m.ID, qid); err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}
