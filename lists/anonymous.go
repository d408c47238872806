package lists

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime"
	"net/mail"
	"regexp"
	"strings"

	"github.com/emersion/go-message/textproto"

	"github.com/cvd-project/cvd/store"
)

// An anonymous member (an incident's reporter who asked for it) is kept
// from the list's outsiders (downstreams and observers): their copies of
// the member's posts say "the reporter" instead of the address, name and
// key fingerprint, every Message-ID they see is replaced by one of the
// list's own (a Message-ID names the sender's domain), and x-list-members
// hides the address. The team (coordinators, fixers) sees everything.

// outsider reports whether a member of role sees anonymous members
// anonymized.
func outsider(role string) bool { return role == RoleDownstream || role == RoleObserver }

// anonView is how a copy is anonymized for an outsider.
type anonView struct {
	list *store.List
	// sender says the post is the anonymous member's own.
	sender bool
}

// anonID maps a Message-ID to one of the list's own, the same for every
// outsider, so that threads hold together.
func (s *Service) anonID(l *store.List, id string) string {
	sum := sha256.Sum256([]byte(l.Name + "\x00" + id))
	return "<" + hex.EncodeToString(sum[:12]) + "@" + s.Domain + ">"
}

// anonIDs maps every Message-ID in a field value (References).
func (s *Service) anonIDs(l *store.List, v string) string {
	var out []string
	for {
		id := msgID(v)
		if id == "" {
			break
		}
		out = append(out, s.anonID(l, id))
		v = v[strings.Index(v, id)+len(id):]
	}
	return strings.Join(out, " ")
}

// anonFrom is the From of an anonymous member's post.
func (s *Service) anonFrom(l *store.List) string {
	return (&mail.Address{Name: "reporter via " + l.Name, Address: s.Address(l.Name)}).String()
}

// anonHeader rewrites a copy's header fields (the visible header or the
// sealed entity's) for an outsider.
func (s *Service) anonHeader(h *textproto.Header, v *anonView) {
	if v.sender {
		h.Set("From", s.anonFrom(v.list))
	}
	for _, k := range []string{"Message-Id", "In-Reply-To", "References"} {
		if val := h.Get(k); val != "" {
			if mapped := s.anonIDs(v.list, val); mapped != "" {
				h.Set(k, mapped)
			} else {
				h.Del(k)
			}
		}
	}
}

var (
	blockFrom      = regexp.MustCompile(`(?m)^From:      [^\r\n]*`)
	blockSignature = regexp.MustCompile(`(?m)^(Signature: [^\r\n]*?) by [0-9A-Fa-f]{16,}`)
	// The sender checks name the reporter's address, domain or key.
	blockSenderChecks = regexp.MustCompile(`(?m)^(Authentication-Results: |Note:      reporter )[^\r\n]*(\r\n)?`)
)

// anonInner rewrites an entity built by postJob.inner (a multipart/mixed
// whose first part is cvd's post header block) for an outsider.
func (s *Service) anonInner(inner []byte, v *anonView) ([]byte, error) {
	head, body := splitEntity(inner)
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return nil, fmt.Errorf("anonymize: %w", err)
	}
	s.anonHeader(&h, v)
	if v.sender {
		_, params, err := mime.ParseMediaType(h.Get("Content-Type"))
		if err != nil || params["boundary"] == "" {
			return nil, fmt.Errorf("anonymize: not a post entity")
		}
		sep := []byte("\r\n--" + params["boundary"])
		end := bytes.Index(body, sep)
		if end < 0 {
			return nil, fmt.Errorf("anonymize: no header block")
		}
		block := blockFrom.ReplaceAll(body[:end:end], []byte("From:      the reporter (anonymous)"))
		block = blockSignature.ReplaceAll(block, []byte("$1 by the reporter's key"))
		block = blockSenderChecks.ReplaceAll(block, nil)
		body = append(block, body[end:]...)
	}
	var b bytes.Buffer
	if err := textproto.WriteHeader(&b, h); err != nil {
		return nil, fmt.Errorf("anonymize: %w", err)
	}
	b.Write(body)
	if v.sender {
		return dropKeys(b.Bytes(), 0), nil
	}
	return b.Bytes(), nil
}

// keyRemoved replaces a public key attached by an anonymous member: its
// user IDs would name them.
const keyRemoved = "Content-Type: text/plain; charset=utf-8\r\n\r\n[a public key attached here was removed: the reporter is anonymous]\r\n"

// dropKeys replaces the application/pgp-keys parts of a MIME entity.
func dropKeys(ent []byte, depth int) []byte {
	head, body := splitEntity(ent)
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return ent
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return ent
	}
	if mt == "application/pgp-keys" {
		return []byte(keyRemoved)
	}
	if !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" || depth >= 8 {
		return ent
	}
	sep := []byte("\r\n--" + params["boundary"])
	pieces := bytes.Split(append([]byte("\r\n"), body...), sep)
	for i := 1; i < len(pieces); i++ {
		if bytes.HasPrefix(pieces[i], []byte("--")) {
			break
		}
		part, ok := bytes.CutPrefix(pieces[i], []byte("\r\n"))
		if !ok {
			continue
		}
		pieces[i] = append([]byte("\r\n"), dropKeys(part, depth+1)...)
	}
	out := append([]byte{}, head...)
	return append(out, bytes.Join(pieces, sep)[2:]...)
}
