package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// List kinds.
const (
	ListIncident = "incident"
	ListAnnounce = "announce"
)

// Member states.
const (
	MemberActive  = "active"
	MemberFrozen  = "frozen"
	MemberRemoved = "removed"
)

// List is a mailing list.
type List struct {
	ID            int64
	Name          string
	Kind          string
	Title         string
	AllowUnsigned bool
	CreatedAt     time.Time
}

// Member is a list member. Its key is the one pinned for Email in the key
// store.
type Member struct {
	ID          int64
	ListID      int64
	Email       string
	Name        string
	Role        string
	State       string
	StateReason string
	Failures    int
	AddedAt     time.Time
	// Anonymous members are shown to the list's downstreams and observers
	// without their address or name.
	Anonymous bool
}

// ErrExists is returned when creating something that already exists.
var ErrExists = errors.New("already exists")

// CreateListTx creates a list inside tx.
func CreateListTx(ctx context.Context, tx *sql.Tx, l *List) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO list (name, kind, title, allow_unsigned, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		l.Name, l.Kind, l.Title, l.AllowUnsigned, l.CreatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("create list %s: %w", l.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("create list %s: %w", l.Name, ErrExists)
	}
	l.ID, err = res.LastInsertId()
	return err
}

// ListByNameTx returns the list called name, or ErrNotFound.
func ListByNameTx(ctx context.Context, tx *sql.Tx, name string) (*List, error) {
	var l List
	var created int64
	err := tx.QueryRowContext(ctx, `SELECT id, name, kind, title, allow_unsigned, created_at FROM list WHERE name = ?`, strings.ToLower(name)).
		Scan(&l.ID, &l.Name, &l.Kind, &l.Title, &l.AllowUnsigned, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("list %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", name, err)
	}
	l.CreatedAt = time.UnixMilli(created).UTC()
	return &l, nil
}

// AddMemberTx adds m to its list, or brings a removed member back with the
// new role. It fails with ErrExists for a member already there.
func AddMemberTx(ctx context.Context, tx *sql.Tx, m *Member) error {
	m.Email = strings.ToLower(m.Email)
	now := m.AddedAt.UnixMilli()
	res, err := tx.ExecContext(ctx, `INSERT INTO member (list_id, email, name, role, state, added_at, updated_at) VALUES (?, ?, ?, ?, 'active', ?, ?)
		ON CONFLICT (list_id, email) DO UPDATE SET role = excluded.role, name = excluded.name, state = 'active', state_reason = '', failures = 0, updated_at = excluded.updated_at
		WHERE member.state = 'removed'`,
		m.ListID, m.Email, m.Name, m.Role, now, now)
	if err != nil {
		return fmt.Errorf("add member %s: %w", m.Email, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("add member %s: %w", m.Email, ErrExists)
	}
	m.State = MemberActive
	return tx.QueryRowContext(ctx, `SELECT id FROM member WHERE list_id = ? AND email = ?`, m.ListID, m.Email).Scan(&m.ID)
}

// MembersTx returns the members of list in the order they were added,
// removed ones included.
func MembersTx(ctx context.Context, tx *sql.Tx, listID int64) ([]Member, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, list_id, email, name, role, state, state_reason, failures, added_at, anonymous FROM member WHERE list_id = ? ORDER BY id`, listID)
	if err != nil {
		return nil, fmt.Errorf("members of list %d: %w", listID, err)
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		var added int64
		if err := rows.Scan(&m.ID, &m.ListID, &m.Email, &m.Name, &m.Role, &m.State, &m.StateReason, &m.Failures, &added, &m.Anonymous); err != nil {
			return nil, err
		}
		m.AddedAt = time.UnixMilli(added).UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

// SetMemberStateTx changes a member's state, recording the reason.
func SetMemberStateTx(ctx context.Context, tx *sql.Tx, memberID int64, state, reason string, at time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE member SET state = ?, state_reason = ?, updated_at = ? WHERE id = ?`, state, reason, at.UnixMilli(), memberID)
	if err != nil {
		return fmt.Errorf("set member %d %s: %w", memberID, state, err)
	}
	return nil
}

// SetMemberAnonymousTx sets whether the member email of list listID is
// anonymous toward the list's downstreams and observers.
func SetMemberAnonymousTx(ctx context.Context, tx *sql.Tx, listID int64, email string, anonymous bool) error {
	res, err := tx.ExecContext(ctx, `UPDATE member SET anonymous = ? WHERE list_id = ? AND email = ?`, anonymous, listID, strings.ToLower(email))
	if err != nil {
		return fmt.Errorf("set member %s anonymous: %w", email, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("set member %s anonymous: %w", email, ErrNotFound)
	}
	return nil
}

// AnonymousMemberTx returns the address of the list's anonymous member
// (whatever their state), or "" when there is none.
func AnonymousMemberTx(ctx context.Context, tx *sql.Tx, listID int64) (string, error) {
	var email string
	err := tx.QueryRowContext(ctx, `SELECT email FROM member WHERE list_id = ? AND anonymous ORDER BY id LIMIT 1`, listID).Scan(&email)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("anonymous member of list %d: %w", listID, err)
	}
	return email, nil
}

// MemberFailureTx counts a failed delivery or encryption for a member and
// returns the count; success resets it (ok=true).
func MemberFailureTx(ctx context.Context, tx *sql.Tx, memberID int64, ok bool) (int, error) {
	q := `UPDATE member SET failures = failures + 1 WHERE id = ? RETURNING failures`
	if ok {
		q = `UPDATE member SET failures = 0 WHERE id = ? RETURNING failures`
	}
	var n int
	if err := tx.QueryRowContext(ctx, q, memberID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count failure of member %d: %w", memberID, err)
	}
	return n, nil
}

// Post is a message received for a list.
type Post struct {
	ID         int64
	ListID     int64
	SpoolID    int64
	MessageID  string
	Sender     string
	Status     string // distributed, held, duplicate, loop, refused
	Encrypted  bool
	Signature  string
	Signer     string
	ReceivedAt time.Time
	// Archive is the post sealed to the list key, read whole. On a post
	// being added with ArchiveBody, it is the list key's own part of
	// that shared body (AddSharedBodyTx).
	Archive     []byte
	ArchiveBody *SharedBody
}

const postColumns = `id, list_id, COALESCE(spool_id, 0), message_id, sender, status, encrypted, signature, signer, received_at, archive, archive_body, archive_size`

// scanPost reads a row of postColumns, its archive made whole by wr (a
// shared body) or read from its pieces.
func scanPost(ctx context.Context, s interface{ Scan(...any) error }, wr *wholeReader) (*Post, error) {
	var p Post
	var at, size int64
	var body sql.NullInt64
	if err := s.Scan(&p.ID, &p.ListID, &p.SpoolID, &p.MessageID, &p.Sender, &p.Status, &p.Encrypted, &p.Signature, &p.Signer, &at, &p.Archive, &body, &size); err != nil {
		return nil, err
	}
	p.ReceivedAt = time.UnixMilli(at).UTC()
	var err error
	if p.Archive, err = wr.read(ctx, postPieces, p.ID, p.Archive, size, body); err != nil {
		return nil, err
	}
	return &p, nil
}

// PostSeenTx reports whether a post with messageID was already received on
// the list.
func PostSeenTx(ctx context.Context, tx *sql.Tx, listID int64, messageID string) (bool, error) {
	if messageID == "" {
		return false, nil
	}
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM post WHERE list_id = ? AND message_id = ?`, listID, messageID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("post seen: %w", err)
	}
	return true, nil
}

// AddPostTx records p. A duplicate Message-ID is recorded without it.
func AddPostTx(ctx context.Context, tx *sql.Tx, p *Post) error {
	mid := p.MessageID
	if p.Status == "duplicate" {
		mid = ""
	}
	var body any
	if p.ArchiveBody != nil {
		body = p.ArchiveBody.id
	}
	// A large archive of its own is stored in pieces (pieces.go).
	archive, size := p.Archive, 0
	if len(archive) > SpoolPiece && p.ArchiveBody == nil {
		archive, size = []byte{}, len(p.Archive)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO post (list_id, spool_id, message_id, sender, status, encrypted, signature, signer, received_at, archive, archive_body, archive_size)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ListID, nullID(p.SpoolID), mid, p.Sender, p.Status, p.Encrypted, p.Signature, p.Signer, p.ReceivedAt.UnixMilli(), archive, body, size)
	if err != nil {
		return fmt.Errorf("record post %q: %w", p.MessageID, err)
	}
	if p.ID, err = res.LastInsertId(); err != nil {
		return err
	}
	if size > 0 {
		if err := postPieces.insertTx(ctx, tx, p.ID, [][]byte{p.Archive}); err != nil {
			return fmt.Errorf("record post %q: %w", p.MessageID, err)
		}
	}
	return nil
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// AddPostCopyTx records that queued message queueMsg is a member's copy of
// a post; the queued message is kept as the member's archive copy.
func AddPostCopyTx(ctx context.Context, tx *sql.Tx, postID, memberID, queueMsg int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO post_copy (post_id, member_id, queue_msg) VALUES (?, ?, ?)`, postID, memberID, queueMsg)
	if err != nil {
		return fmt.Errorf("record copy of post %d for member %d: %w", postID, memberID, err)
	}
	return nil
}

// PostCopies returns the copies of a post as sent, by member ID.
func (db *DB) PostCopies(ctx context.Context, postID int64) (map[int64][]byte, error) {
	out := map[int64][]byte{}
	err := db.Read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT c.member_id, m.raw, m.id, m.size, m.body_id FROM post_copy c JOIN queue_msg m ON m.id = c.queue_msg WHERE c.post_id = ?`, postID)
		if err != nil {
			return err
		}
		defer rows.Close()
		wr := &wholeReader{tx: tx}
		defer wr.close()
		for rows.Next() {
			var id, msgID, size int64
			var raw []byte
			var body sql.NullInt64
			if err := rows.Scan(&id, &raw, &msgID, &size, &body); err != nil {
				return err
			}
			if raw, err = wr.read(ctx, queuePieces, msgID, raw, size, body); err != nil {
				return err
			}
			out[id] = raw
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("copies of post %d: %w", postID, err)
	}
	return out, nil
}

// Posts returns the posts of a list, oldest first.
func (db *DB) Posts(ctx context.Context, listID int64) (ps []Post, err error) {
	err = db.Read(ctx, func(tx *sql.Tx) error {
		ps, err = PostsTx(ctx, tx, listID)
		return err
	})
	return ps, err
}

// PostsTx returns the posts of a list, oldest first.
func PostsTx(ctx context.Context, tx *sql.Tx, listID int64) ([]Post, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+postColumns+` FROM post WHERE list_id = ? ORDER BY id`, listID)
	if err != nil {
		return nil, fmt.Errorf("posts of list %d: %w", listID, err)
	}
	defer rows.Close()
	var out []Post
	wr := &wholeReader{tx: tx}
	defer wr.close()
	for rows.Next() {
		p, err := scanPost(ctx, rows, wr)
		if err != nil {
			return nil, fmt.Errorf("posts of list %d: %w", listID, err)
		}
		out = append(out, *p)
	}
	return out, rows.Err()
}

// HasPostCopyTx reports whether the member already has a copy of the post.
func HasPostCopyTx(ctx context.Context, tx *sql.Tx, postID, memberID int64) (bool, error) {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM post_copy WHERE post_id = ? AND member_id = ?`, postID, memberID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// SignatureSeenTx records a command signature's digest and reports whether
// it had been used before.
func SignatureSeenTx(ctx context.Context, tx *sql.Tx, digest string, at time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO seen_signature (digest, at) VALUES (?, ?) ON CONFLICT DO NOTHING`, digest, at.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("record signature: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 0, nil
}

// SetAllowUnsignedTx sets whether members may post without a good
// signature on the list.
func SetAllowUnsignedTx(ctx context.Context, tx *sql.Tx, listID int64, allow bool) error {
	if _, err := tx.ExecContext(ctx, `UPDATE list SET allow_unsigned = ? WHERE id = ?`, allow, listID); err != nil {
		return fmt.Errorf("set list policy: %w", err)
	}
	return nil
}

// ListToken is a token of a list: a pending confirmation or a one-click
// unsubscribe token.
type ListToken struct {
	Token     string
	ListID    int64
	Email     string
	Action    string // subscribe, unsubscribe, oneclick
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
}

// AddListTokenTx stores a token.
func AddListTokenTx(ctx context.Context, tx *sql.Tx, t *ListToken) error {
	var exp int64
	if !t.ExpiresAt.IsZero() {
		exp = t.ExpiresAt.UnixMilli()
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO list_token (token, list_id, email, action, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		t.Token, t.ListID, strings.ToLower(t.Email), t.Action, t.CreatedAt.UnixMilli(), exp)
	if err != nil {
		return fmt.Errorf("store %s token: %w", t.Action, err)
	}
	return nil
}

// ListTokenTx returns a token, or ErrNotFound.
func ListTokenTx(ctx context.Context, tx *sql.Tx, token string) (*ListToken, error) {
	t := ListToken{Token: token}
	var created, exp int64
	err := tx.QueryRowContext(ctx, `SELECT list_id, email, action, created_at, expires_at FROM list_token WHERE token = ?`, token).
		Scan(&t.ListID, &t.Email, &t.Action, &created, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("list token: %w", err)
	}
	t.CreatedAt = time.UnixMilli(created).UTC()
	if exp != 0 {
		t.ExpiresAt = time.UnixMilli(exp).UTC()
	}
	return &t, nil
}

// LatestListTokenTx returns the newest token of an action for an address,
// or ErrNotFound.
func LatestListTokenTx(ctx context.Context, tx *sql.Tx, listID int64, email, action string) (*ListToken, error) {
	var token string
	err := tx.QueryRowContext(ctx, `SELECT token FROM list_token WHERE list_id = ? AND email = ? AND action = ? ORDER BY created_at DESC LIMIT 1`,
		listID, strings.ToLower(email), action).Scan(&token)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("list token: %w", err)
	}
	return ListTokenTx(ctx, tx, token)
}

// DeleteListTokenTx deletes a token.
func DeleteListTokenTx(ctx context.Context, tx *sql.Tx, token string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM list_token WHERE token = ?`, token); err != nil {
		return fmt.Errorf("delete list token: %w", err)
	}
	return nil
}
