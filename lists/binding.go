package lists

import (
	"context"
	"database/sql"
	"mime"
	"net/mail"
	"slices"
	"strings"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/store"
)

// binding is what a post's protected content says about the list it is
// for (the rule "Destination binding" in the README).
type binding struct {
	// ok: the post may count on this list.
	ok bool
	// explicit: the protected content names this list (the x-list line
	// or the protected To/Cc); commands need it.
	explicit bool
	// reason says why a post is not bound, in words for coordinators.
	reason string
	// candidates are the lists an unbound post may be meant for; all
	// means any incident list. Only coordinators who are members of
	// all of them may read the held post.
	candidates []string
	all        bool
}

// bind decides whether the post counts on this list. Only content nobody
// but its author could have written counts: the signed part of a post
// with a member's good signature, or the encrypted part of any other
// encrypted post. Plain, unsigned mail carries nothing to protect and is
// always bound.
//
// The signed (or encrypted) part names lists with its x-list line, or
// else with the list addresses in its protected To and Cc (RFC 9788).
// A post that names this list is bound; one that names only other lists
// is not. One that names no list is bound only when its verified sender
// is a member of this incident list and of no other.
func (p *postJob) bind(ctx context.Context, tx *sql.Tx, kws []Keyword) (binding, error) {
	o := p.opened
	verified := p.verified()
	if !verified && !o.Encrypted {
		return binding{ok: true}, nil
	}
	part := "encrypted"
	if verified {
		part = "signed"
	}
	named := p.namedLists(kws, verified)
	switch {
	case slices.Contains(named, p.list.Name):
		return binding{ok: true, explicit: true}, nil
	case len(named) > 0:
		return binding{reason: "its " + part + " part names list " + strings.Join(named, ", ") + ", not this one", candidates: named}, nil
	case !verified:
		return binding{reason: "it is encrypted, not signed by a member, and its encrypted part names no list", all: true}, nil
	}
	ls, err := store.MemberListsTx(ctx, tx, p.sender.Email, store.ListIncident)
	if err != nil {
		return binding{}, err
	}
	if len(ls) == 1 && ls[0] == p.list.Name {
		return binding{ok: true}, nil
	}
	return binding{reason: "its signed part names no list and the sender is a member of several (name it with the first line x-list: " +
		p.list.Name + ", or address it to " + p.listAddr + ")", candidates: ls}, nil
}

// namedLists returns the incident lists the protected content names: the
// x-list line, else the list addresses of the protected To and Cc. For a
// verified post only header protection inside the signed part counts.
func (p *postJob) namedLists(kws []Keyword, verified bool) []string {
	for _, kw := range kws {
		if kw.Name == "list" {
			if n := strings.ToLower(strings.TrimSpace(kw.Args)); n != "" {
				return []string{n}
			}
		}
	}
	o := p.opened
	if o.Protection == "" || verified && !signedProtection(o) {
		return nil
	}
	var out []string
	for _, k := range []string{"To", "Cc"} {
		v := o.Protected.Get(k)
		if v == "" {
			continue
		}
		addrs, err := mail.ParseAddressList(v)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			pa := ParseAddress(a.Address, p.s.Domain)
			if pa.Kind == Security && pa.Tag != "" && !strings.HasPrefix(pa.Tag, "bounce-") && !slices.Contains(out, pa.Tag) {
				out = append(out, pa.Tag)
			}
		}
	}
	return out
}

// signedProtection reports whether the protected header fields of o come
// from the signed entity itself (not from an encrypted wrapper around a
// signed part, which anyone who read the signed part could write).
func signedProtection(o *crypto.Opened) bool {
	_, params, err := mime.ParseMediaType(o.Header.Get("Content-Type"))
	if err != nil {
		return false
	}
	hp := strings.ToLower(params["hp"])
	return hp == "cipher" || hp == "clear" || strings.EqualFold(params["protected-headers"], "v1")
}

// entitled splits the coordinators of the list into those who may read an
// unbound post (members of every list it may be meant for) and the others.
func (p *postJob) entitled(ctx context.Context, tx *sql.Tx, b binding) (in, out []*member, err error) {
	want := b.candidates
	if b.all {
		if want, err = store.ListNamesTx(ctx, tx, store.ListIncident); err != nil {
			return nil, nil, err
		}
	}
	for _, m := range p.members {
		if m.Role != RoleCoordinator {
			continue
		}
		ls, err := store.MemberListsTx(ctx, tx, m.Email, store.ListIncident)
		if err != nil {
			return nil, nil, err
		}
		ok := len(want) > 0
		for _, w := range want {
			if !slices.Contains(ls, w) {
				ok = false
				break
			}
		}
		if ok {
			in = append(in, m)
		} else {
			out = append(out, m)
		}
	}
	return in, out, nil
}
