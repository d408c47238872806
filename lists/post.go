package lists

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/store"
	"github.com/cvd-project/cvd/templates"
)

// Post outcomes, as recorded on the post.
const (
	PostDistributed = "distributed"
	PostHeld        = "held"
	PostDuplicate   = "duplicate"
	PostLoop        = "loop"
	PostRefused     = "refused"
)

// PostResult says what happened to a post.
type PostResult struct {
	PostID int64
	Status string
	// Reason explains held and refused posts (for logs; no content).
	Reason string
	// Copies is the number of sealed copies queued.
	Copies int
	// Missed lists members who got only a missed-message notice.
	Missed []string
}

// HandlePost processes a message received for the incident list listName:
// it opens it, checks the sender, and distributes it sealed to every other
// active member, or holds it for the coordinators. Everything it decides
// (post, copies, notices, the spool row's state) commits in one
// transaction.
func (s *Service) HandlePost(ctx context.Context, listName string, sm *store.SpooledMessage, rcpt string) (*PostResult, error) {
	return s.HandlePostWith(ctx, listName, sm, rcpt, PostOptions{})
}

// PostOptions change how HandlePostWith treats a post.
type PostOptions struct {
	// NoReceipt sends the sender no receipt for a held post (the intake
	// has acknowledged the message already).
	NoReceipt bool
	// Notes are extra lines for the header block (e.g. the intake's
	// reason for not acknowledging the sender).
	Notes []string
	// Commit, when set, runs in the transaction that records a
	// distributed or held post, after it (e.g. the intake's
	// acknowledgement, committed with the post or not at all).
	Commit func(ctx context.Context, tx *sql.Tx, status string) error
	// Tx, when set, is the write transaction the post runs in, its reads
	// and its writes; the caller commits it.
	Tx *sql.Tx
}

// read runs fn in the post's transaction when it has one, else in a
// read transaction.
func (p *postJob) read(ctx context.Context, fn func(*sql.Tx) error) error {
	if p.opts.Tx != nil {
		return fn(p.opts.Tx)
	}
	return p.s.DB.Read(ctx, fn)
}

// write runs fn in the post's transaction when it has one, else in a
// write transaction of its own.
func (p *postJob) write(ctx context.Context, fn func(*sql.Tx) error) error {
	if p.opts.Tx != nil {
		return fn(p.opts.Tx)
	}
	return p.s.DB.Write(ctx, fn)
}

// HandlePostWith is HandlePost with options.
func (s *Service) HandlePostWith(ctx context.Context, listName string, sm *store.SpooledMessage, rcpt string, opts PostOptions) (*PostResult, error) {
	now := s.now()
	var l *store.List
	var members []*member
	var anon string
	err := (&postJob{s: s, opts: opts}).read(ctx, func(tx *sql.Tx) error {
		var err error
		if l, err = store.ListByNameTx(ctx, tx, listName); err != nil {
			return err
		}
		if members, err = s.loadMembers(ctx, tx, l.ID, now); err != nil {
			return err
		}
		anon, err = store.AnonymousMemberTx(ctx, tx, l.ID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("post to %s: %w", listName, err)
	}
	if l.Kind != store.ListIncident {
		return nil, fmt.Errorf("post to %s: not an incident list", listName)
	}
	p := &postJob{s: s, list: l, members: members, anon: anon, sm: sm, rcpt: rcpt, now: now, listAddr: s.Address(l.Name), opts: opts}
	res, err := p.run(ctx)
	if err != nil {
		return nil, fmt.Errorf("post to %s (spool %d): %w", listName, sm.ID, err)
	}
	s.log().Info("list post", "list", l.Name, "spool", sm.ID, "post", res.PostID, "status", res.Status,
		"reason", res.Reason, "copies", res.Copies, "missed", len(res.Missed))
	return res, nil
}

type postJob struct {
	s       *Service
	list    *store.List
	members []*member
	// anon is the address of the list's anonymous member, or "".
	anon     string
	sm       *store.SpooledMessage
	rcpt     string
	opts     PostOptions
	now      time.Time
	listAddr string

	outer  textproto.Header
	opened *crypto.Opened
	from   *mail.Address
	sender *member
	post   store.Post
	res    PostResult
	// heldReason is stated in the header block of held copies.
	heldReason string
	// extra are notices queued with the post; senderTold says one of
	// them tells the sender why the post was held.
	extra      []*notice
	senderTold bool
	// removed are members a command of the post removed: they get no
	// copy of it.
	removed []*member
}

func (p *postJob) run(ctx context.Context) (*PostResult, error) {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(p.sm.Raw)))
	if err != nil {
		return p.finish(ctx, PostRefused, "unreadable header")
	}
	p.outer = h
	p.post = store.Post{ListID: p.list.ID, SpoolID: p.sm.ID, MessageID: msgID(h.Get("Message-Id")), ReceivedAt: p.sm.ReceivedAt, Signature: crypto.Unsigned.String()}
	if from, ok := parseFrom(h); ok {
		p.from = from
		p.post.Sender = from.Address
	}

	// Our own copies coming back, and mail we already took.
	if strings.Contains(strings.ToLower(h.Get("X-Loop")), p.listAddr) || p.post.Sender == p.listAddr {
		return p.finish(ctx, PostLoop, "own mail came back")
	}
	if as := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted"))); p.sm.MailFrom == "" || as != "" && as != "no" {
		// Bounces and auto-replies addressed to a list never reach members.
		return p.finish(ctx, PostRefused, "automatic message")
	}
	var seen bool
	if err := p.read(ctx, func(tx *sql.Tx) (err error) {
		seen, err = store.PostSeenTx(ctx, tx, p.list.ID, p.post.MessageID)
		return err
	}); err != nil {
		return nil, err
	}
	if seen {
		return p.finish(ctx, PostDuplicate, "Message-ID seen before")
	}

	var verify []*crypto.Key
	for _, m := range p.members {
		if m.key != nil {
			verify = append(verify, m.key)
		}
	}
	o, err := crypto.Open(p.sm.Raw, []*crypto.Key{p.s.Key}, verify, p.now, p.s.Limits)
	if err != nil {
		reason := "could not be opened"
		switch {
		case errors.Is(err, crypto.ErrLimit):
			reason = "exceeds a limit: " + err.Error()
		case errors.Is(err, crypto.ErrDecrypt):
			return p.undecryptable(ctx)
		}
		return p.finish(ctx, PostRefused, reason)
	}
	p.opened = o
	p.post.Encrypted = o.Encrypted
	p.post.Signature = o.Signature.String()
	p.post.Signer = o.Signer
	// RFC 9788: the protected From counts when the message has one.
	if o.Protection != "" {
		if from, ok := parseFrom(o.Protected); ok {
			p.from = from
			p.post.Sender = from.Address
		}
	}
	for _, m := range p.members {
		if p.from != nil && m.Email == p.from.Address {
			p.sender = m
		}
	}
	kws, stripped := stripKeywords(o.Entity, 0)
	var b binding
	if err := p.read(ctx, func(tx *sql.Tx) (err error) {
		b, err = p.bind(ctx, tx, kws)
		return err
	}); err != nil {
		return nil, err
	}
	if !b.ok {
		return p.holdUnbound(ctx, b)
	}
	if len(kws) == 1 && kws[0].Name == "list" && !blank(stripped) {
		// A plain post naming its list: the x-list line is not content.
		p.opened.Entity, kws = stripped, nil
	}
	switch {
	case p.sender == nil && p.delegate():
		return p.distribute(ctx, true)
	case p.sender == nil:
		return p.hold(ctx, "sender is not a member")
	case p.verified():
		if kws != nil {
			return p.commands(ctx, kws, stripped, b.explicit)
		}
		return p.distribute(ctx, false)
	case p.list.AllowUnsigned && o.Signature == crypto.Unsigned:
		return p.distribute(ctx, true)
	default:
		return p.hold(ctx, "no good signature by the member's key ("+o.Signature.String()+")")
	}
}

// holdUnbound holds a post that does not count on this list. Its content
// goes only to the coordinators who are members of every list it may be
// meant for (who could read it there); the other coordinators, and a
// verified sender, get a notice without content.
func (p *postJob) holdUnbound(ctx context.Context, b binding) (*PostResult, error) {
	var in, out []*member
	if err := p.read(ctx, func(tx *sql.Tx) (err error) {
		in, out, err = p.entitled(ctx, tx, b)
		return err
	}); err != nil {
		return nil, err
	}
	tell := out
	if p.verified() {
		// The sender wrote it: they need the reason, not a copy.
		in = slices.DeleteFunc(in, func(m *member) bool { return m == p.sender })
		if !slices.Contains(tell, p.sender) {
			tell = append(tell, p.sender)
		}
		p.senderTold = true
	}
	if len(tell) > 0 {
		p.extra = append(p.extra, &notice{kind: "held", origin: store.OriginNotice, members: tell,
			text: mustRender("held", map[string]any{"List": p.list.Name, "ListAddress": p.listAddr,
				"From": templates.HeaderSafe(p.post.Sender), "Reason": b.reason})})
	}
	return p.send(ctx, PostHeld, b.reason, in, false)
}

// undecryptable refuses a post the list key cannot decrypt: nobody could
// read it. The sender (when an automatic reply is allowed) and the
// coordinators get a notice without content.
func (p *postJob) undecryptable(ctx context.Context) (*PostResult, error) {
	reason := "could not be decrypted with the list key"
	text := mustRender("undecryptable", map[string]any{"List": p.list.Name, "ListAddress": p.listAddr,
		"From": templates.HeaderSafe(p.post.Sender), "Fingerprint": p.s.Key.Fingerprint()})
	notices := []*notice{{kind: "undecryptable", origin: store.OriginNotice, coordinators: true, text: text}}
	if ShouldAutoReply(p.outer, p.sm.MailFrom) && p.s.mayReply(p.sm, p.sm.MailFrom) {
		notices = append(notices, &notice{kind: "undecryptable", origin: store.OriginReply, plainTo: []string{p.sm.MailFrom}, text: text})
	}
	p.post.Status = PostRefused
	p.res.Status, p.res.Reason = PostRefused, reason
	err := p.write(ctx, func(tx *sql.Tx) error {
		if err := store.AddPostTx(ctx, tx, &p.post); err != nil {
			return err
		}
		for _, n := range notices {
			if err := p.s.queueNotice(ctx, tx, p.list, p.members, n, p.now); err != nil {
				return err
			}
		}
		return store.MarkRcptTx(ctx, tx, p.sm.ID, p.rcpt, store.SpoolFailed, PostRefused+": "+reason)
	})
	if err != nil {
		return nil, err
	}
	p.res.PostID = p.post.ID
	return &p.res, nil
}

func (s *Service) mayReply(sm *store.SpooledMessage, addr string) bool {
	return s.MayReply == nil || s.MayReply(sm, addr)
}

func (p *postJob) verified() bool {
	return p.sender != nil && p.sender.key != nil && p.opened.Signature == crypto.Good &&
		strings.EqualFold(p.opened.Signer, p.sender.key.Fingerprint())
}

// finish records a post that is not distributed and marks the spool row.
func (p *postJob) finish(ctx context.Context, status, reason string) (*PostResult, error) {
	p.post.Status = status
	p.res.Status, p.res.Reason = status, reason
	err := p.write(ctx, func(tx *sql.Tx) error {
		if err := store.AddPostTx(ctx, tx, &p.post); err != nil {
			return err
		}
		state := store.SpoolDone
		if status == PostRefused {
			state = store.SpoolFailed
		}
		return store.MarkRcptTx(ctx, tx, p.sm.ID, p.rcpt, state, status+": "+reason)
	})
	if err != nil {
		return nil, err
	}
	p.res.PostID = p.post.ID
	return &p.res, nil
}

// subject is the post's real subject: protected, inner, or outer.
func (p *postJob) subject() string {
	if p.opened.Protection != "" {
		if v := headerValue(p.opened.Protected, "Subject"); v != "" {
			return v
		}
	}
	if v := headerValue(p.opened.Header, "Subject"); v != "" && v != crypto.ObscuredSubject && v != "..." {
		return v
	}
	if v := headerValue(p.outer, "Subject"); v != crypto.ObscuredSubject && v != "..." {
		return v
	}
	return ""
}

// fromName is the poster's display name for "NAME via LIST".
func (p *postJob) fromName() string {
	name := ""
	if p.sender != nil {
		name = p.sender.Name
	}
	if name == "" && p.from != nil {
		name = HeaderName(p.from.Name)
	}
	if name == "" && p.from != nil {
		name, _, _ = strings.Cut(p.from.Address, "@")
	}
	return templates.HeaderSafe(name + " via " + p.list.Name)
}

// headerBlock is the text/plain part that tells members who posted and how.
func (p *postJob) headerBlock(held, notVerified bool) ([]byte, error) {
	from := p.post.Sender
	if p.from != nil {
		from = HeaderName(p.from.Name) + " <" + p.from.Address + ">"
		from = strings.TrimSpace(from)
	}
	r, err := templates.Render("header", map[string]any{
		"Held": held, "List": p.list.Name, "ListAddress": p.listAddr, "From": templates.HeaderSafe(from),
		"Signature": p.opened.Signature.String(), "Signer": p.opened.Signer, "Encrypted": p.opened.Encrypted,
		"NotVerified": notVerified, "Notes": append(slices.Clip(p.opened.Notes), p.opts.Notes...), "Reason": p.heldReason,
		"AuthResults": p.sm.Auth.String(), "Fingerprint": p.s.Key.Fingerprint(),
	})
	if err != nil {
		return nil, err
	}
	return []byte(strings.ReplaceAll(r.Body, "\n", "\r\n")), nil
}

// inner builds the entity sealed to members: a multipart/mixed with the
// header block first and the post's own content (its Content-* fields and
// body) second.
func (p *postJob) inner(held, notVerified bool) ([]byte, error) {
	e, err := p.innerParts(held, notVerified)
	if err != nil {
		return nil, err
	}
	return e.join(), nil
}

// innerEntity is inner in three parts: everything before the post's
// body (with the whole header), the body as opened, and what follows
// it. A large post is sealed from them without copying its body.
type innerEntity struct {
	head, body, tail []byte
}

func (e innerEntity) join() []byte {
	return slices.Concat(e.head, e.body, e.tail)
}

// innerParts is inner in parts.
func (p *postJob) innerParts(held, notVerified bool) (innerEntity, error) {
	block, err := p.headerBlock(held, notVerified)
	if err != nil {
		return innerEntity{}, err
	}
	ent := p.opened.Entity
	eh, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(ent)))
	if err != nil {
		return innerEntity{}, fmt.Errorf("read opened header: %w", err)
	}
	body := ent
	if i := bytes.Index(ent, []byte("\r\n\r\n")); i >= 0 {
		body = ent[i+4:]
	} else {
		body = nil
	}
	var b bytes.Buffer
	boundary := randomToken()
	subject := p.subject()
	if held {
		subject = "[held] " + subject
	}
	writeField(&b, "Subject", subject)
	writeField(&b, "From", (&mail.Address{Name: p.fromName(), Address: p.listAddr}).String())
	writeField(&b, "To", p.listAddr)
	writeField(&b, "Date", p.now.Format(time.RFC1123Z))
	if id := p.post.MessageID; id != "" {
		writeField(&b, "Message-ID", id)
	}
	writeField(&b, "MIME-Version", "1.0")
	writeField(&b, "Content-Type", `multipart/mixed; boundary="`+boundary+`"`)
	b.Write(crlf)
	b.WriteString("--" + boundary + "\r\n")
	writeField(&b, "Content-Type", "text/plain; charset=utf-8")
	writeField(&b, "Content-Transfer-Encoding", "8bit")
	writeField(&b, "Content-Description", "cvd post header")
	b.Write(crlf)
	b.Write(block)
	b.WriteString("\r\n--" + boundary + "\r\n")
	hasType := false
	for f := eh.Fields(); f.Next(); {
		k := strings.ToLower(f.Key())
		if !strings.HasPrefix(k, "content-") {
			continue
		}
		if k == "content-type" {
			hasType = true
		}
		raw, err := f.Raw()
		if err != nil {
			return innerEntity{}, err
		}
		b.Write(raw)
	}
	if !hasType {
		writeField(&b, "Content-Type", "text/plain; charset=us-ascii")
	}
	b.Write(crlf)
	var tail []byte
	if !bytes.HasSuffix(body, crlf) {
		tail = append(tail, crlf...)
	}
	tail = append(tail, "--"+boundary+"--\r\n"...)
	return innerEntity{head: b.Bytes(), body: body, tail: tail}, nil
}

// outerHeader is the visible header of every sealed copy.
func (p *postJob) outerHeader() (textproto.Header, error) {
	var h textproto.Header
	h.Set("From", (&mail.Address{Name: p.fromName(), Address: p.listAddr}).String())
	h.Set("To", p.listAddr)
	h.Set("Date", p.now.Format(time.RFC1123Z))
	mid := p.post.MessageID
	if mid == "" {
		mid = "<" + randomToken() + "@" + p.s.Domain + ">"
	}
	h.Set("Message-Id", mid)
	if v := msgID(p.outer.Get("In-Reply-To")); v != "" {
		h.Set("In-Reply-To", v)
	}
	if refs := p.outer.Get("References"); refs != "" {
		h.Set("References", templates.HeaderSafe(refs))
	}
	if err := p.s.listHeaders(&h, p.list); err != nil {
		return h, err
	}
	return h, nil
}

// listHeaders adds RFC 2369/2919 headers, loop protection and the list key.
func (s *Service) listHeaders(h *textproto.Header, l *store.List) error {
	addr := s.Address(l.Name)
	h.Set("List-Id", "<"+l.Name+"."+SecurityLocalPart+"."+s.Domain+">")
	h.Set("List-Post", "<mailto:"+addr+">")
	h.Set("List-Help", "<mailto:"+addr+"?subject=help>")
	h.Set("Reply-To", addr)
	h.Set("Precedence", "list")
	h.Set("X-Loop", addr)
	h.Set("X-Auto-Response-Suppress", "OOF, AutoReply")
	ac, err := s.autocrypt(addr)
	if err != nil {
		return err
	}
	h.Set("Autocrypt", ac)
	return nil
}

func randomToken() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// distribute seals the post to every other active member and queues it.
func (p *postJob) distribute(ctx context.Context, notVerified bool) (*PostResult, error) {
	var to []*member
	for _, m := range p.members {
		if m != p.sender {
			to = append(to, m)
		}
	}
	return p.send(ctx, PostDistributed, "", to, notVerified)
}

// hold forwards the post to the coordinators only, marked as held; the
// sender gets a neutral receipt.
func (p *postJob) hold(ctx context.Context, reason string) (*PostResult, error) {
	var to []*member
	for _, m := range p.members {
		if m.Role == RoleCoordinator {
			to = append(to, m)
		}
	}
	return p.send(ctx, PostHeld, reason, to, false)
}

// delivery is a post sealed and ready to be recorded and queued. The
// copies of a fan-out are stored as its shared body once and each
// recipient's own part (see commitTx): a large post to many members is
// never held, nor written, once per member.
type delivery struct {
	status, reason string
	sealTo, missed []*member
	// copies[i] makes the copy for sealTo[i].
	copies []sealedCopy
	// archive is the copy sealed to the list key.
	archive sealedCopy
	// fans are the fan-outs made, closed once recorded.
	fans []*crypto.Fanout
}

// close lets the fan-outs' spill files go.
func (d *delivery) close() {
	for _, f := range d.fans {
		f.Close()
	}
}

// sealedCopy is one copy of a post: copy i of a fan-out, or raw.
type sealedCopy struct {
	fan *crypto.Fanout
	i   int
	raw []byte
}

// prepare seals the post to the members in to that have a usable key (and
// to the list key, for the archive); the others will get a notice.
func (p *postJob) prepare(status, reason string, to []*member, notVerified bool) (_ *delivery, err error) {
	held := status == PostHeld
	p.heldReason = reason
	parts, err := p.innerParts(held, notVerified)
	if err != nil {
		return nil, err
	}
	outer, err := p.outerHeader()
	if err != nil {
		return nil, err
	}
	d := &delivery{status: status, reason: reason}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	var keys, outKeys []*crypto.Key
	var outs []*member
	var own []*member
	for _, m := range to {
		switch {
		case m.problem != "":
			d.missed = append(d.missed, m)
		case p.s.outerSubject(p.list.Name, m.Email) != "":
			own = append(own, m)
		case p.anon != "" && outsider(m.Role):
			outKeys = append(outKeys, m.key)
			outs = append(outs, m)
		default:
			keys = append(keys, m.key)
			d.sealTo = append(d.sealTo, m)
		}
	}
	keys = append(keys, p.s.Key)
	fan, err := crypto.NewFanoutSpill(p.s.DB.SpillFile, parts.head, [][]byte{parts.body, parts.tail}, outer, p.s.Key, keys, p.now)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	d.fans = append(d.fans, fan)
	var inner []byte
	if len(outs) > 0 || len(own) > 0 {
		inner = parts.join()
	}
	for i := range d.sealTo {
		d.copies = append(d.copies, sealedCopy{fan: fan, i: i})
	}
	d.archive = sealedCopy{fan: fan, i: len(keys) - 1}
	if len(outs) > 0 {
		v := &anonView{list: p.list, sender: p.post.Sender == p.anon}
		ainner, err := p.s.anonInner(inner, v)
		if err != nil {
			return nil, err
		}
		aouter := outer.Copy()
		p.s.anonHeader(&aouter, v)
		afan, err := crypto.NewFanoutSpill(p.s.DB.SpillFile, ainner, nil, aouter, p.s.Key, outKeys, p.now)
		if err != nil {
			return nil, fmt.Errorf("seal: %w", err)
		}
		d.fans = append(d.fans, afan)
		d.sealTo = append(d.sealTo, outs...)
		for i := range outs {
			d.copies = append(d.copies, sealedCopy{fan: afan, i: i})
		}
	}
	for _, m := range own {
		in, out := inner, outer
		if p.anon != "" && outsider(m.Role) {
			v := &anonView{list: p.list, sender: p.post.Sender == p.anon}
			if in, err = p.s.anonInner(inner, v); err != nil {
				return nil, err
			}
			out = outer.Copy()
			p.s.anonHeader(&out, v)
		}
		raw, err := p.s.sealOne(in, out, m.key, p.now, p.s.outerSubject(p.list.Name, m.Email))
		if err != nil {
			return nil, fmt.Errorf("seal: %w", err)
		}
		d.sealTo = append(d.sealTo, m)
		d.copies = append(d.copies, sealedCopy{raw: raw})
	}
	return d, nil
}

// commitTx records the post, queues its copies and notices, and marks the
// spool recipient done, inside tx. It returns the members it froze.
func (p *postJob) commitTx(ctx context.Context, tx *sql.Tx, d *delivery) ([]*member, error) {
	// The copies of a fan-out, the archive's among them, share their
	// body: it is stored once, and each copy keeps only its recipient's
	// part.
	bodies := map[*crypto.Fanout]*store.SharedBody{}
	share := func(c sealedCopy) ([]byte, *store.SharedBody, error) {
		if c.fan == nil {
			return c.raw, nil, nil
		}
		if bodies[c.fan] == nil {
			b, err := store.AddFanoutBodyTx(ctx, tx, c.fan)
			if err != nil {
				return nil, nil, err
			}
			bodies[c.fan] = b
		}
		return c.fan.Head(c.i), bodies[c.fan], nil
	}
	p.post.Status = d.status
	var err error
	if p.post.Archive, p.post.ArchiveBody, err = share(d.archive); err != nil {
		return nil, err
	}
	err = store.AddPostTx(ctx, tx, &p.post)
	p.post.Archive, p.post.ArchiveBody = nil, nil
	if err != nil {
		return nil, err
	}
	for i, m := range d.sealTo {
		if slices.Contains(p.removed, m) {
			continue
		}
		out := &store.OutMessage{Rcpts: []string{m.Email}, Origin: store.OriginRelay, Kind: "post", Ref: p.list.Name, CreatedAt: p.now}
		if out.Raw, out.Body, err = share(d.copies[i]); err != nil {
			return nil, err
		}
		qid, err := store.EnqueueTx(ctx, tx, out)
		if err != nil {
			return nil, err
		}
		if err := store.AddPostCopyTx(ctx, tx, p.post.ID, m.ID, qid); err != nil {
			return nil, err
		}
		if m.Failures > 0 {
			if _, err := store.MemberFailureTx(ctx, tx, m.ID, true); err != nil {
				return nil, err
			}
		}
	}
	var notices []*notice
	var frozen []*member
	for _, m := range d.missed {
		n, err := store.MemberFailureTx(ctx, tx, m.ID, false)
		if err != nil {
			return nil, err
		}
		if n >= p.s.freezeAfter() {
			if err := store.SetMemberStateTx(ctx, tx, m.ID, store.MemberFrozen, m.problem, p.now); err != nil {
				return nil, err
			}
			if _, _, err := p.s.dropCopiesTx(ctx, tx, p.list, m.ID, m.Email, "member frozen: "+m.problem, p.now); err != nil {
				return nil, err
			}
			frozen = append(frozen, m)
		}
		notices = append(notices, p.s.missedNotice(p.list, m), p.s.keyProblemNotice(p.list, m, n, n >= p.s.freezeAfter()))
	}
	if d.status == PostHeld && !p.senderTold && !p.opts.NoReceipt && p.from != nil && ShouldAutoReply(p.outer, p.sm.MailFrom) && p.s.mayReply(p.sm, p.sm.MailFrom) {
		notices = append(notices, p.s.receipt(p.list, p.sm.MailFrom))
	}
	notices = append(notices, p.extra...)
	for _, n := range notices {
		if err := p.s.queueNotice(ctx, tx, p.list, p.members, n, p.now); err != nil {
			return nil, err
		}
	}
	return frozen, store.MarkRcptTx(ctx, tx, p.sm.ID, p.rcpt, store.SpoolDone, d.status)
}

// result fills the post's result after commit.
func (p *postJob) result(d *delivery, frozen []*member) *PostResult {
	p.res.PostID, p.res.Status, p.res.Reason, p.res.Copies = p.post.ID, d.status, d.reason, len(d.sealTo)
	for _, m := range d.missed {
		p.res.Missed = append(p.res.Missed, m.Email)
	}
	for _, m := range frozen {
		p.s.log().Warn("member frozen", "list", p.list.Name, "member_id", m.ID, "reason", m.problem)
	}
	return &p.res
}

func (p *postJob) send(ctx context.Context, status, reason string, to []*member, notVerified bool) (*PostResult, error) {
	d, err := p.prepare(status, reason, to, notVerified)
	if err != nil {
		return nil, err
	}
	defer d.close()
	var frozen []*member
	err = p.write(ctx, func(tx *sql.Tx) (err error) {
		if frozen, err = p.commitTx(ctx, tx, d); err != nil || p.opts.Commit == nil {
			return err
		}
		return p.opts.Commit(ctx, tx, d.status)
	})
	if err != nil {
		return nil, err
	}
	return p.result(d, frozen), nil
}
