package lists

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/store"
)

// PostCommand is the status of a post that only carried commands.
const PostCommand = "command"

// commands runs the keywords of a verified post, strips them, and
// distributes what remains. Commands run only when the signed part names
// this list (explicit: the x-list line or the protected To/Cc) and its
// signature is fresh and never used before (useSignatureTx). Everything
// commits in one transaction: the commands' effects, the signature's use,
// the encrypted reply to the sender and the distribution.
func (p *postJob) commands(ctx context.Context, kws []Keyword, stripped []byte, explicit bool) (*PostResult, error) {
	original := p.opened.Entity
	found, _ := crypto.Discover(original, p.s.Limits)
	p.opened.Entity = stripped

	var d *delivery
	if !blank(stripped) {
		var others []*member
		for _, m := range p.members {
			if m != p.sender {
				others = append(others, m)
			}
		}
		var err error
		if d, err = p.prepare(PostDistributed, "", others, false); err != nil {
			return nil, err
		}
	}

	var frozen []*member
	var results []string
	err := p.write(ctx, func(tx *sql.Tx) error {
		results = nil
		refusal := ""
		if explicit {
			var err error
			if refusal, err = p.s.useSignatureTx(ctx, tx, p.opened, p.now); err != nil {
				return err
			}
		}
		switch {
		case !explicit:
			results = append(results, fmt.Sprintf("refused: commands must name this list: start with the line x-list: %s, or address the signed message to %s", p.list.Name, p.listAddr))
		case refusal != "":
			results = append(results, "refused: "+refusal)
		default:
			for _, kw := range kws {
				if kw.Name == "list" {
					continue
				}
				r, err := p.command(ctx, tx, kw, found, stripped)
				if err != nil {
					return err
				}
				results = append(results, "x-"+kw.Name+": "+r)
			}
			if len(results) == 0 {
				results = append(results, "x-list: "+p.list.Name+": no command and no text, nothing to do")
			}
		}
		p.s.log().Info("list commands", "list", p.list.Name, "sender_member", p.sender.ID, "count", len(kws), "named", explicit, "refused", refusal)
		if err := p.reply(ctx, tx, results, d != nil); err != nil {
			return err
		}
		if d == nil {
			p.post.Status = PostCommand
			if err := store.AddPostTx(ctx, tx, &p.post); err != nil {
				return err
			}
			return store.MarkRcptTx(ctx, tx, p.sm.ID, p.rcpt, store.SpoolDone, PostCommand)
		}
		var err error
		frozen, err = p.commitTx(ctx, tx, d)
		return err
	})
	if err != nil {
		return nil, err
	}
	if d == nil {
		p.res.PostID, p.res.Status = p.post.ID, PostCommand
		return &p.res, nil
	}
	return p.result(d, frozen), nil
}

// reply queues the command results to the sender, sealed to their key.
func (p *postJob) reply(ctx context.Context, tx *sql.Tx, results []string, distributed bool) error {
	if p.sender.problem != "" {
		p.s.log().Warn("command results not sent: sender's key unusable", "list", p.list.Name, "sender_member", p.sender.ID)
		return nil
	}
	text := mustRender("commands", map[string]any{"List": p.list.Name, "ListAddress": p.listAddr, "Results": results, "Distributed": distributed})
	return p.s.sealTo(ctx, tx, p.list, "commands", text.Subject, text.Body, p.sender.Email, p.sender.key, store.OriginReply, p.now)
}

// sealTo queues a text sealed to one key, from the list.
func (s *Service) sealTo(ctx context.Context, tx *sql.Tx, l *store.List, kind, subject, body, to string, key *crypto.Key, origin store.Origin, now time.Time) error {
	from := (&mail.Address{Name: "cvd for " + l.Name, Address: s.Address(l.Name)}).String()
	var inner strings.Builder
	inner.WriteString("Subject: " + subject + "\r\nFrom: " + from + "\r\nTo: " + to + "\r\n")
	inner.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	inner.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	var outer textproto.Header
	outer.Set("From", from)
	outer.Set("To", to)
	outer.Set("Date", now.Format(time.RFC1123Z))
	outer.Set("Message-Id", "<"+randomToken()+"@"+s.Domain+">")
	outer.Set("X-Loop", s.Address(l.Name))
	raw, err := crypto.Seal([]byte(inner.String()), outer, s.Key, key, now)
	if err != nil {
		return fmt.Errorf("seal %s to %s: %w", kind, to, err)
	}
	_, err = store.EnqueueTx(ctx, tx, &store.OutMessage{Rcpts: []string{to}, Raw: raw, Origin: origin, Kind: kind, Ref: l.Name, CreatedAt: now})
	return err
}

var errNotCoordinator = errors.New("refused: only a coordinator may do this")

// command runs one keyword and returns the result line.
func (p *postJob) command(ctx context.Context, tx *sql.Tx, kw Keyword, found []crypto.Found, stripped []byte) (string, error) {
	coord := p.sender.Role == RoleCoordinator
	args := strings.Fields(kw.Args)
	switch kw.Name {
	case "list-members":
		ms, err := store.MembersTx(ctx, tx, p.list.ID)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, m := range ms {
			if m.Anonymous && outsider(p.sender.Role) {
				fmt.Fprintf(&b, "\n    (anonymous) %s %s", m.Role, m.State)
				continue
			}
			key := "no key"
			if pk, err := store.KeyForListTx(ctx, tx, p.list.ID, m.Email); err == nil {
				key = pk.Fingerprint
			}
			fmt.Fprintf(&b, "\n    %s %s %s %s", m.Email, m.Role, m.State, key)
		}
		return "ok" + b.String(), nil
	case "add-member":
		if !coord {
			return errNotCoordinator.Error(), nil
		}
		if len(args) != 2 {
			return "refused: use x-add-member: EMAIL ROLE", nil
		}
		email := strings.ToLower(args[0])
		var key []byte
		note := ""
		if k := keyFor(found, email); k != nil {
			if where := p.s.authority(email); where != "" {
				note = "; the attached key was ignored: " + email + "'s key is set in " + where
			} else {
				key, _ = k.ArmoredPublic()
			}
		}
		// An attached key is trusted on this list only.
		m, err := p.s.AddMemberTx(ctx, tx, p.list.Name, NewMember{Email: email, Role: args[1], Key: key, Actor: p.sender.Email,
			ListKey: "attached to x-add-member by " + p.sender.Email})
		if err != nil {
			return "refused: " + userError(err), nil
		}
		if key == nil {
			if _, err := store.KeyForListTx(ctx, tx, p.list.ID, m.Email); err != nil {
				return "ok, added " + m.Email + " as " + m.Role + note + "; no key is known for them: attach one with x-add-key", nil
			}
		}
		return "ok, added " + m.Email + " as " + m.Role + note, nil
	case "remove-member":
		if !coord {
			return errNotCoordinator.Error(), nil
		}
		if len(args) != 1 {
			return "refused: use x-remove-member: EMAIL", nil
		}
		email := strings.ToLower(args[0])
		for _, m := range p.members {
			if m.Email == email {
				if m.Role == RoleCoordinator && p.coordinators() == 1 {
					return "refused: " + email + " is the last coordinator", nil
				}
				if err := store.SetMemberStateTx(ctx, tx, m.ID, store.MemberRemoved, "removed by "+p.sender.Email, p.now); err != nil {
					return "", err
				}
				p.removed = append(p.removed, m)
				_, dropped, err := p.s.dropCopiesTx(ctx, tx, p.list, m.ID, email, "member removed by "+p.sender.Email, p.now)
				if err != nil {
					return "", err
				}
				if dropped != "" {
					return "ok, removed " + email + "; " + dropped, nil
				}
				return "ok, removed " + email, nil
			}
		}
		return "refused: " + email + " is not an active member", nil
	case "add-key":
		if len(found) == 0 {
			return "refused: attach the public key (application/pgp-keys or an armored block)", nil
		}
		var out []string
		for _, f := range found {
			for _, email := range f.Key.Emails() {
				m := p.activeMember(email)
				if m == nil {
					continue
				}
				if !coord && m != p.sender {
					out = append(out, email+": refused, only a coordinator may change another member's key")
					continue
				}
				armored, err := f.Key.ArmoredPublic()
				if err != nil {
					return "", err
				}
				// A key changed by mail counts on this list only; elsewhere
				// it takes the administrator.
				if err := p.s.setListKeyTx(ctx, tx, p.list, email, armored, "x-add-key by "+p.sender.Email, p.sender.Email); err != nil {
					out = append(out, email+": refused, "+userError(err))
					continue
				}
				line := email + ": ok, " + f.Key.Fingerprint() + " is used on " + p.list.Name + " only"
				if m.key != nil && !strings.EqualFold(m.key.Fingerprint(), f.Key.Fingerprint()) {
					done, err := p.s.keyChangedTx(ctx, tx, p.list, m.ID, email, f.Key, p.now)
					if err != nil {
						return "", err
					}
					if done != "" {
						line += "; " + done
					}
				}
				out = append(out, line)
			}
		}
		if len(out) == 0 {
			return "refused: no attached key has a user ID of a member of this list", nil
		}
		return strings.Join(out, "; "), nil
	case "resend":
		if !coord {
			return errNotCoordinator.Error(), nil
		}
		if len(args) != 1 {
			return "refused: use x-resend: EMAIL", nil
		}
		return p.resend(ctx, tx, strings.ToLower(args[0]), found)
	case "send-backlog":
		if !coord {
			return errNotCoordinator.Error(), nil
		}
		if len(args) != 1 {
			return "refused: use x-send-backlog: EMAIL", nil
		}
		return p.s.sendBacklogTx(ctx, tx, p.list, strings.ToLower(args[0]), time.Time{}, p.now)
	}
	if p.s.Keywords != nil {
		reply, known, err := p.s.Keywords(ctx, tx, &Command{List: p.list, Sender: p.sender.Member, Signer: p.opened.Signer,
			Keyword: kw, Attached: stripped, Now: p.now})
		if err != nil {
			return "", err
		}
		if known {
			return reply, nil
		}
	}
	return "refused: unknown keyword", nil
}

func (p *postJob) coordinators() int {
	n := 0
	for _, m := range p.members {
		if m.Role == RoleCoordinator {
			n++
		}
	}
	return n
}

func (p *postJob) activeMember(email string) *member {
	for _, m := range p.members {
		if m.Email == email {
			return m
		}
	}
	return nil
}

func keyFor(found []crypto.Found, email string) *crypto.Key {
	for _, f := range found {
		if slices.Contains(f.Key.Emails(), email) {
			return f.Key
		}
	}
	return nil
}

// userError is an error's text without internal detail.
func userError(err error) string {
	var pe *store.PinnedError
	var ae *AuthorityError
	switch {
	case errors.As(err, &ae):
		return ae.Error()
	case errors.As(err, &pe):
		return "a different key is pinned for " + pe.Email
	case errors.Is(err, store.ErrExists):
		return "already a member"
	}
	var ke *crypto.KeyError
	if errors.As(err, &ke) {
		return "key " + ke.Problem.String()
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.HasPrefix(msg, "add member") {
		return msg[i+2:]
	}
	return msg
}

// resend seals the post (without its keywords) to a non-member with a
// usable key; cvd never sends incident content without encryption.
func (p *postJob) resend(ctx context.Context, tx *sql.Tx, email string, found []crypto.Found) (string, error) {
	if _, err := mail.ParseAddress(email); err != nil || !strings.Contains(email, "@") {
		return "refused: not an email address", nil
	}
	key := keyFor(found, email)
	if key != nil {
		// The attached key is used for this copy only, never pinned, and
		// never instead of a key known for the address.
		if pk, err := store.KeyForListTx(ctx, tx, p.list.ID, email); err == nil && !strings.EqualFold(pk.Fingerprint, key.Fingerprint()) {
			return "refused: " + userError(&store.PinnedError{Email: email, Fingerprint: pk.Fingerprint}), nil
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
	} else {
		pk, err := store.KeyForListTx(ctx, tx, p.list.ID, email)
		if errors.Is(err, store.ErrNotFound) {
			return "refused: no key is known for " + email + "; attach it (cvd never sends incident content unencrypted)", nil
		}
		if err != nil {
			return "", err
		}
		if key, err = p.s.parseKey(pk); err != nil {
			return "refused: the key pinned for " + email + " cannot be read", nil
		}
	}
	if err := crypto.CheckUsable(key, p.now); err != nil {
		return "refused: " + userError(err), nil
	}
	inner, err := p.inner(false, false)
	if err != nil {
		return "", err
	}
	outer, err := p.outerHeader()
	if err != nil {
		return "", err
	}
	outer.Set("To", email)
	raw, err := crypto.Seal(inner, outer, p.s.Key, key, p.now)
	if err != nil {
		return "", fmt.Errorf("resend to %s: %w", email, err)
	}
	if _, err := store.EnqueueTx(ctx, tx, &store.OutMessage{Rcpts: []string{email}, Raw: raw, Origin: store.OriginRelay, Kind: "resend", Ref: p.list.Name, CreatedAt: p.now}); err != nil {
		return "", err
	}
	p.s.log().Info("post resent to a non-member", "list", p.list.Name, "by_member", p.sender.ID, "to", email)
	return "ok, sent encrypted to " + email + " (" + key.Fingerprint() + ")", nil
}
