package lists

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/store"
)

// Roles of list members.
const (
	RoleReporter    = "reporter"
	RoleCoordinator = "coordinator"
	RoleFixer       = "fixer"
	RoleDownstream  = "downstream"
	RoleObserver    = "observer"
	RoleSubscriber  = "subscriber"
)

// IncidentRoles are the roles a member of an incident list can have.
var IncidentRoles = []string{RoleReporter, RoleCoordinator, RoleFixer, RoleDownstream, RoleObserver}

// DefaultFreezeAfter is the number of failures in a row (no usable key,
// permanent bounce) after which a member is frozen.
const DefaultFreezeAfter = 3

// Service runs cvd's lists. Every copy it sends is signed with Key (the
// project key, which is also each list's key and the archive key).
type Service struct {
	DB     *store.DB
	Domain string
	// Key is the project's private key.
	Key *crypto.Key
	// Limits bound the work on one incoming message.
	Limits crypto.Limits
	// FreezeAfter is DefaultFreezeAfter when zero.
	FreezeAfter int
	// MaxSignatureAge bounds the age of signatures on commands and
	// announcements; DefaultMaxSignatureAge when zero.
	MaxSignatureAge time.Duration
	// Keywords handles keywords lists does not know itself (incident
	// keywords); nil refuses them.
	Keywords KeywordHandler
	// WebBase is the base URL of the project's site, for one-click
	// unsubscribe links; "https://DOMAIN" when empty.
	WebBase string
	// Authority, when set, names where the key of an address is set by
	// the administrator (e.g. "cvd.toml (embargo.team)"), or returns "".
	// Mail never changes the key of such an address.
	Authority func(email string) string
	// MayReply, when set, says whether the sender addr of sm may get an
	// automatic reply (a receipt, a refusal notice); nil allows it.
	MayReply func(sm *store.SpooledMessage, addr string) bool
	// Project is the project's name in the From of announcements and
	// the announce list's title; the domain when empty.
	Project string
	// PostsFor, when set, names the member on whose behalf a sender who
	// is not a member posts (see delegate), or returns "".
	PostsFor func(list, sender string) string
	// OuterSubject, when set, returns the outer Subject a member's copies
	// must have instead of "[...]" (e.g. "[vs] ..." for the distros
	// list), or "".
	OuterSubject func(list, email string) string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	Log *slog.Logger

	keyCache sync.Map // fingerprint + armored -> *crypto.Key
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Service) freezeAfter() int {
	if s.FreezeAfter > 0 {
		return s.FreezeAfter
	}
	return DefaultFreezeAfter
}

func (s *Service) projectName() string {
	if s.Project != "" {
		return s.Project
	}
	return s.Domain
}

// Address returns the posting address of the list called name.
func (s *Service) Address(name string) string {
	return SecurityLocalPart + "+" + name + "@" + s.Domain
}

// IntakeAddress is security@DOMAIN.
func (s *Service) IntakeAddress() string { return SecurityLocalPart + "@" + s.Domain }

var listNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

var incidentNameRE = regexp.MustCompile(`^[0-9]{4}-[0-9]{3,}$`)

// IncidentName reports whether name has the form of an incident ID
// (YYYY-NNN): such lists are created by the intake only.
func IncidentName(name string) bool { return incidentNameRE.MatchString(strings.ToLower(name)) }

// CreateListTx creates a list inside tx.
func (s *Service) CreateListTx(ctx context.Context, tx *sql.Tx, name, kind, title string) (*store.List, error) {
	name = strings.ToLower(name)
	if !listNameRE.MatchString(name) || strings.HasPrefix(name, "bounce-") {
		return nil, fmt.Errorf("create list %q: a name is lowercase letters, digits and '-', at most 63, not starting with bounce-", name)
	}
	if kind != store.ListIncident && kind != store.ListAnnounce {
		return nil, fmt.Errorf("create list %s: unknown kind %q", name, kind)
	}
	l := &store.List{Name: name, Kind: kind, Title: title, CreatedAt: s.now()}
	if err := store.CreateListTx(ctx, tx, l); err != nil {
		return nil, err
	}
	return l, nil
}

// CreateList creates a list.
func (s *Service) CreateList(ctx context.Context, name, kind, title string) (l *store.List, err error) {
	err = s.DB.Write(ctx, func(tx *sql.Tx) error {
		l, err = s.CreateListTx(ctx, tx, name, kind, title)
		return err
	})
	return l, err
}

// NewMember describes a member to add.
type NewMember struct {
	Email string
	Name  string
	Role  string
	// Key is the member's armored public key; nil keeps the key already
	// pinned for Email (a member without any key gets only notices).
	Key []byte
	// ReplaceKey allows Key to replace a different pinned key (recorded).
	ReplaceKey bool
	// ListKey, when set, trusts Key on this list only, for this reason
	// (e.g. "came with the report, unverified"); the address's global pin
	// is not touched.
	ListKey string
	// Actor is who adds the member, for the key history.
	Actor string
}

// AddMemberTx adds a member to the list inside tx, pinning its key. When
// it fails, nothing of it is left in tx.
func (s *Service) AddMemberTx(ctx context.Context, tx *sql.Tx, listName string, nm NewMember) (m *store.Member, err error) {
	if _, err := tx.ExecContext(ctx, "SAVEPOINT add_member"); err != nil {
		return nil, fmt.Errorf("add member: %w", err)
	}
	defer func() {
		if err != nil {
			if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO add_member; RELEASE add_member"); rerr != nil {
				err = errors.Join(err, rerr)
			}
			return
		}
		if _, rerr := tx.ExecContext(ctx, "RELEASE add_member"); rerr != nil {
			m, err = nil, fmt.Errorf("add member: %w", rerr)
		}
	}()
	return s.addMemberTx(ctx, tx, listName, nm)
}

func (s *Service) addMemberTx(ctx context.Context, tx *sql.Tx, listName string, nm NewMember) (*store.Member, error) {
	l, err := store.ListByNameTx(ctx, tx, listName)
	if err != nil {
		return nil, err
	}
	addr, err := mail.ParseAddress(nm.Email)
	if err != nil || !strings.Contains(addr.Address, "@") {
		return nil, fmt.Errorf("add member %q: not an email address", nm.Email)
	}
	email := strings.ToLower(addr.Address)
	if l.Kind == store.ListIncident && !slices.Contains(IncidentRoles, nm.Role) {
		return nil, fmt.Errorf("add member %s: role %q: use one of %s", email, nm.Role, strings.Join(IncidentRoles, ", "))
	}
	if l.Kind == store.ListAnnounce && nm.Role != RoleSubscriber && nm.Role != RoleCoordinator {
		return nil, fmt.Errorf("add member %s: role on an announce list: use %q, or %q for who may post", email, RoleSubscriber, RoleCoordinator)
	}
	switch {
	case nm.Key != nil && nm.ListKey != "":
		if err := s.setListKeyTx(ctx, tx, l, email, nm.Key, nm.ListKey, nm.Actor); err != nil {
			return nil, fmt.Errorf("add member %s: %w", email, err)
		}
	case nm.Key != nil:
		if _, err := s.pinKeyTx(ctx, tx, email, nm.Key, nm.ReplaceKey, nm.Actor, "added to list "+l.Name); err != nil {
			return nil, fmt.Errorf("add member %s: %w", email, err)
		}
	}
	m := &store.Member{ListID: l.ID, Email: email, Name: HeaderName(nm.Name), Role: nm.Role, AddedAt: s.now()}
	if err := store.AddMemberTx(ctx, tx, m); err != nil {
		return nil, err
	}
	return m, nil
}

// AddMember adds a member to a list, pinning its key.
func (s *Service) AddMember(ctx context.Context, listName string, nm NewMember) (m *store.Member, err error) {
	err = s.DB.Write(ctx, func(tx *sql.Tx) error {
		m, err = s.AddMemberTx(ctx, tx, listName, nm)
		return err
	})
	return m, err
}

// checkKey parses an armored key for email and checks it can be used now.
func (s *Service) checkKey(email string, armored []byte, now time.Time) (store.PublicKey, error) {
	k, err := crypto.ParseKey(armored)
	if err != nil {
		return store.PublicKey{}, fmt.Errorf("key: %w", err)
	}
	if !slices.Contains(k.Emails(), email) {
		return store.PublicKey{}, fmt.Errorf("key %s has no user ID for %s (it has %s)", k.Fingerprint(), email, strings.Join(k.Emails(), ", "))
	}
	if err := crypto.CheckUsable(k, now); err != nil {
		return store.PublicKey{}, err
	}
	pub, err := k.ArmoredPublic()
	if err != nil {
		return store.PublicKey{}, err
	}
	return store.PublicKey{Fingerprint: k.Fingerprint(), Armored: pub, Created: k.Created(), Expires: k.Expires(), Revoked: k.Revoked(now)}, nil
}

// authority is where the key of email is set by the administrator, or "".
func (s *Service) authority(email string) string {
	if s.Authority == nil {
		return ""
	}
	return s.Authority(email)
}

// AuthorityError refuses a key change by mail for an address whose key
// the administrator sets.
type AuthorityError struct{ Email, Where string }

func (e *AuthorityError) Error() string {
	return "the key of " + e.Email + " is set by the administrator in " + e.Where + "; mail cannot change it"
}

// setListKeyTx checks an armored key for email and trusts it on list l
// only.
func (s *Service) setListKeyTx(ctx context.Context, tx *sql.Tx, l *store.List, email string, armored []byte, source, actor string) error {
	if where := s.authority(email); where != "" {
		return &AuthorityError{Email: email, Where: where}
	}
	now := s.now()
	pk, err := s.checkKey(email, armored, now)
	if err != nil {
		return err
	}
	return store.SetListKeyTx(ctx, tx, l.ID, l.Name, email, pk, source, store.KeyChange{At: now, Actor: actor})
}

// SetListKeyTx trusts an armored key for email on the list listName only,
// recording source ("came with the report, unverified", ...). It refuses
// addresses whose key the administrator sets.
func (s *Service) SetListKeyTx(ctx context.Context, tx *sql.Tx, listName, email string, armored []byte, source, actor string) error {
	l, err := store.ListByNameTx(ctx, tx, listName)
	if err != nil {
		return err
	}
	return s.setListKeyTx(ctx, tx, l, strings.ToLower(strings.TrimSpace(email)), armored, source, actor)
}

// pinKeyTx checks an armored key for email and pins it. A replaced key
// takes effect on the queue (keyChangedTx); the result says what that did.
func (s *Service) pinKeyTx(ctx context.Context, tx *sql.Tx, email string, armored []byte, replace bool, actor, reason string) ([]string, error) {
	now := s.now()
	pk, err := s.checkKey(email, armored, now)
	if err != nil {
		return nil, err
	}
	if where := s.authority(email); where != "" {
		if cur, err := store.PinnedKeyTx(ctx, tx, email); err == nil && strings.EqualFold(cur.Fingerprint, pk.Fingerprint) {
			return nil, nil
		}
		return nil, &AuthorityError{Email: email, Where: where}
	}
	ch := store.KeyChange{At: now, Actor: actor, Reason: reason}
	if !replace {
		return nil, store.PinKeyTx(ctx, tx, email, pk, ch)
	}
	cur, err := store.PinnedKeyTx(ctx, tx, email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if err := store.ReplaceKeyTx(ctx, tx, email, pk, ch); err != nil {
		return nil, err
	}
	if cur == nil || strings.EqualFold(cur.Fingerprint, pk.Fingerprint) {
		return nil, nil
	}
	k, err := crypto.ParseKey(pk.Armored)
	if err != nil {
		return nil, err
	}
	return s.globalKeyChangedTx(ctx, tx, email, k, now)
}

// parseKey parses a stored key, caching by fingerprint and content.
func (s *Service) parseKey(pk *store.PublicKey) (*crypto.Key, error) {
	id := pk.Fingerprint + "\x00" + string(pk.Armored)
	if k, ok := s.keyCache.Load(id); ok {
		return k.(*crypto.Key), nil
	}
	k, err := crypto.ParseKey(pk.Armored)
	if err != nil {
		return nil, fmt.Errorf("stored key %s: %w", pk.Fingerprint, err)
	}
	s.keyCache.Store(id, k)
	return k, nil
}

// HeaderName makes a display name safe for a header.
func HeaderName(name string) string {
	var b strings.Builder
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '"' || r == '\\' || r == '<' || r == '>' {
			continue
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// member is a list member with its parsed key, if usable.
type member struct {
	store.Member
	key     *crypto.Key
	problem string // why the key cannot be used; "" when it can
}

// loadMembers returns the active members of a list and their keys.
func (s *Service) loadMembers(ctx context.Context, tx *sql.Tx, listID int64, now time.Time) ([]*member, error) {
	ms, err := store.MembersTx(ctx, tx, listID)
	if err != nil {
		return nil, err
	}
	var out []*member
	for _, m := range ms {
		if m.State != store.MemberActive {
			continue
		}
		mm := &member{Member: m}
		pk, err := store.KeyForListTx(ctx, tx, listID, m.Email)
		switch {
		case errors.Is(err, store.ErrNotFound):
			mm.problem = "no OpenPGP key is known for you"
		case err != nil:
			return nil, err
		default:
			k, err := s.parseKey(pk)
			if err != nil {
				mm.problem = "your key could not be read"
			} else if err := crypto.CheckUsable(k, now); err != nil {
				mm.problem = keyProblem(err)
				mm.key = k // still verifies signatures made while it was valid
			} else {
				mm.key = k
			}
		}
		out = append(out, mm)
	}
	return out, nil
}

func keyProblem(err error) string {
	var ke *crypto.KeyError
	if errors.As(err, &ke) {
		return "your key is unusable: " + ke.Problem.String()
	}
	return "your key is unusable"
}

// headerValue returns a header field's value with line breaks removed.
func headerValue(h textproto.Header, k string) string {
	return strings.Join(strings.Fields(h.Get(k)), " ")
}

func parseFrom(h textproto.Header) (*mail.Address, bool) {
	v := h.Get("From")
	if v == "" {
		return nil, false
	}
	a, err := mail.ParseAddress(v)
	if err != nil {
		return nil, false
	}
	a.Address = strings.ToLower(a.Address)
	return a, true
}

func msgID(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return v[i : i+j+1]
		}
	}
	return ""
}

var crlf = []byte("\r\n")

func writeField(b *bytes.Buffer, k, v string) {
	b.WriteString(k)
	b.WriteString(": ")
	b.WriteString(v)
	b.Write(crlf)
}

// SetAllowUnsigned sets the list's policy for members' posts without a good
// signature: held for coordinators (the default) or distributed marked
// "sender not verified".
func (s *Service) SetAllowUnsigned(ctx context.Context, listName string, allow bool) error {
	return s.DB.Write(ctx, func(tx *sql.Tx) error {
		l, err := store.ListByNameTx(ctx, tx, listName)
		if err != nil {
			return err
		}
		return store.SetAllowUnsignedTx(ctx, tx, l.ID, allow)
	})
}

// PinKey pins an armored public key for email, checked as for a new
// member; replace allows a different pinned key to be replaced (recorded),
// and the queued copies sealed to the old key are sealed again or dropped:
// the result says so, per list.
func (s *Service) PinKey(ctx context.Context, email string, armored []byte, replace bool, actor string) (done []string, err error) {
	err = s.DB.Write(ctx, func(tx *sql.Tx) error {
		done, err = s.pinKeyTx(ctx, tx, strings.ToLower(strings.TrimSpace(email)), armored, replace, actor, "pinned by "+actor)
		return err
	})
	return done, err
}
