package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Outbound queue states. A row goes queued -> sending -> sent, deferred
// (tried again later) or failed (given up). A row found in sending when the
// worker starts was interrupted and is queued again.
const (
	QueueQueued   = "queued"
	QueueSending  = "sending"
	QueueSent     = "sent"
	QueueDeferred = "deferred"
	QueueFailed   = "failed"
)

// maxReplyLen bounds the SMTP reply kept per row.
const maxReplyLen = 1000

// Origin says who a queued message comes from; it decides the RFC 3834
// Auto-Submitted header the queue adds.
type Origin int

const (
	// OriginNotice is cvd's own unsolicited notice (pre-notification,
	// reminder, announcement): "Auto-Submitted: auto-generated".
	OriginNotice Origin = iota
	// OriginReply is cvd's automatic answer to a message (acknowledgement,
	// command result): "Auto-Submitted: auto-replied".
	OriginReply
	// OriginRelay is a person's message passed on to a list; no
	// Auto-Submitted header is added.
	OriginRelay
)

// OutMessage is a message to queue for delivery.
type OutMessage struct {
	// Rcpts are the envelope recipients (local@domain).
	Rcpts []string
	// Raw is the complete message (header and body), CRLF line endings.
	Raw []byte
	// Origin decides the Auto-Submitted header; the zero value is a notice.
	Origin Origin
	// Kind and Ref are kept for whoever handles a failed delivery (e.g.
	// "prenotify" and an incident ID); the queue does not interpret them.
	Kind string
	Ref  string
	// CreatedAt is the enqueue time; time.Now() when zero.
	CreatedAt time.Time
	// Urgent messages are claimed before all others that are due (the
	// public announcement at the end of an embargo).
	Urgent bool
	// Body, when set, is the shared body (AddSharedBodyTx, in the same
	// transaction) of which Raw is this message's own part. Only a
	// relayed message can have one.
	Body *SharedBody
}

// QueueRcpt is one recipient row handed to the delivery worker.
type QueueRcpt struct {
	ID       int64
	Addr     string
	Token    string
	Attempts int
}

// QueueBatch is one message and those of its claimed recipients that share
// a domain: what one SMTP transaction can carry.
type QueueBatch struct {
	MessageID int64
	Domain    string
	Kind      string
	Ref       string
	CreatedAt time.Time
	// Raw is the message, unless it is larger than StreamOver: Raw is
	// nil then and Open reads it.
	Raw []byte
	// Open reads the message piece by piece from the database, when Raw
	// is nil; each call reads it again from the start.
	Open func(ctx context.Context) (io.ReadCloser, error)
	// Size is the message's length.
	Size  int64
	Rcpts []QueueRcpt
}

// StreamOver is the size above which a claimed message stored in pieces,
// or made of a shared body, is read by QueueBatch.Open rather than
// whole: delivering it never holds it in memory.
const StreamOver = SpoolPiece

// QueueOutcome is the result of one delivery attempt to one recipient row.
type QueueOutcome struct {
	ID int64
	// State is QueueSent, QueueDeferred, QueueFailed, or QueueQueued for a
	// row handed back untried (no attempt is counted).
	State string
	// NextAttempt is when a deferred row is due again.
	NextAttempt time.Time
	// Reply is the SMTP reply or the error, for operators.
	Reply string
}

// QueueEntry is a queue row as shown to operators.
type QueueEntry struct {
	ID          int64
	MessageID   int64
	Rcpt        string
	Token       string
	State       string
	Attempts    int
	NextAttempt time.Time
	LastReply   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Kind        string
	Ref         string
}

var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newToken returns an opaque VERP token: 80 random bits, 16 characters of
// lowercase base32 (safe in a local part, case-insensitive).
func newToken() string {
	var b [10]byte
	rand.Read(b[:])
	return tokenEncoding.EncodeToString(b[:])
}

// priority is a row's claim priority: 1 or 0, the only values the claim
// and NextQueueDue look for.
func priority(urgent bool) int {
	if urgent {
		return 1
	}
	return 0
}

// EnqueueTx queues m inside tx, so that the change that caused the message
// and the message commit together. It returns the message's ID.
func EnqueueTx(ctx context.Context, tx *sql.Tx, m *OutMessage) (int64, error) {
	if len(m.Rcpts) == 0 {
		return 0, errors.New("enqueue: no recipients")
	}
	if len(m.Raw) == 0 {
		return 0, errors.New("enqueue: empty message")
	}
	rcpts := make([]string, 0, len(m.Rcpts))
	domains := make([]string, 0, len(m.Rcpts))
	seen := make(map[string]bool, len(m.Rcpts))
	for _, r := range m.Rcpts {
		addr, domain, err := normalizeRcpt(r)
		if err != nil {
			return 0, fmt.Errorf("enqueue: recipient %q: %w", r, err)
		}
		if seen[addr] {
			continue
		}
		seen[addr] = true
		rcpts = append(rcpts, addr)
		domains = append(domains, domain)
	}
	raw := m.Raw
	switch m.Origin {
	case OriginNotice:
		raw = withAutoSubmitted(raw, "auto-generated")
	case OriginReply:
		raw = withAutoSubmitted(raw, "auto-replied")
	}
	size := len(raw)
	var body any
	if m.Body != nil {
		if m.Origin != OriginRelay {
			return 0, errors.New("enqueue: only a relayed message can have a shared body")
		}
		var err error
		if size, err = m.Body.size(len(raw)); err != nil {
			return 0, fmt.Errorf("enqueue: %w", err)
		}
		body = m.Body.id
	}
	now := m.CreatedAt
	if now.IsZero() {
		now = time.Now()
	}
	ms := now.UnixMilli()
	// A large message of its own is stored in pieces (pieces.go); a
	// copy with a shared body stores only its own small part.
	stored := raw
	if len(raw) > SpoolPiece {
		stored = []byte{}
	}
	res, err := tx.ExecContext(ctx,
		`INSERT INTO queue_msg (created_at, kind, ref, size, raw, body_id) VALUES (?, ?, ?, ?, ?, ?)`,
		ms, m.Kind, m.Ref, size, stored, body)
	if err != nil {
		return 0, fmt.Errorf("enqueue: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("enqueue: %w", err)
	}
	if len(raw) > SpoolPiece {
		if err := queuePieces.insertTx(ctx, tx, id, [][]byte{raw}); err != nil {
			return 0, fmt.Errorf("enqueue: %w", err)
		}
	}
	for i, r := range rcpts {
		// The connection keeps the statement prepared (stmtcache.go).
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO queue (msg_id, rcpt, domain, token, next_attempt_at, created_at, updated_at, priority) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			id, r, domains[i], newToken(), ms, ms, ms, priority(m.Urgent)); err != nil {
			return 0, fmt.Errorf("enqueue for %s: %w", r, err)
		}
	}
	return id, nil
}

// Enqueue queues m in a transaction of its own and returns its message ID.
func (db *DB) Enqueue(ctx context.Context, m *OutMessage) (int64, error) {
	var id int64
	err := db.Write(ctx, func(tx *sql.Tx) error {
		var err error
		id, err = EnqueueTx(ctx, tx, m)
		return err
	})
	return id, err
}

// normalizeRcpt checks an envelope recipient and lowercases its domain.
func normalizeRcpt(addr string) (string, string, error) {
	if len(addr) > 254 {
		return "", "", errors.New("longer than 254 characters")
	}
	for _, r := range addr {
		if r < 0x21 || r == 0x7f || r == '<' || r == '>' || r == ',' {
			return "", "", errors.New("contains a forbidden character")
		}
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", "", errors.New("not local@domain")
	}
	domain := strings.ToLower(addr[at+1:])
	return addr[:at] + "@" + domain, domain, nil
}

// withAutoSubmitted prepends "Auto-Submitted: value" unless the header
// already has that field.
func withAutoSubmitted(raw []byte, value string) []byte {
	hdr := raw
	if i := bytes.Index(raw, []byte("\n\r\n")); i >= 0 {
		hdr = raw[:i+1]
	} else if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		hdr = raw[:i+1]
	}
	for line := range bytes.Lines(hdr) {
		if len(line) >= 15 && bytes.EqualFold(line[:15], []byte("auto-submitted:")) {
			return raw
		}
	}
	out := make([]byte, 0, len(raw)+40)
	out = append(out, "Auto-Submitted: "...)
	out = append(out, value...)
	out = append(out, "\r\n"...)
	return append(out, raw...)
}

// RecoverQueue hands rows left in sending (by a crash or a kill) back to the
// queue, due at once. Call it once when the delivery worker starts, before
// any claim. It returns the number of rows recovered.
func (db *DB) RecoverQueue(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`UPDATE queue SET state = 'queued', next_attempt_at = MIN(next_attempt_at, ?), updated_at = ? WHERE state = 'sending'`,
			now.UnixMilli(), now.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("recover queue: %w", err)
	}
	return int(n), nil
}

// ClaimQueue marks up to limit due rows (queued or deferred, due at or
// before now) as sending and returns them grouped by message and domain,
// oldest first. Rows of the domains in skip are left alone.
func (db *DB) ClaimQueue(ctx context.Context, now time.Time, limit int, skip []string) ([]QueueBatch, error) {
	return db.ClaimQueueBytes(ctx, now, limit, 0, skip)
}

// ClaimQueueBytes is ClaimQueue that also stops before the messages of the
// claimed rows exceed maxBytes in all (0: no bound), so that a few large
// messages to many members are not all read into memory at once. The
// first row's message is claimed whatever its size.
func (db *DB) ClaimQueueBytes(ctx context.Context, now time.Time, limit int, maxBytes int64, skip []string) ([]QueueBatch, error) {
	var out []QueueBatch
	err := db.Write(ctx, func(tx *sql.Tx) error {
		args := []any{now.UnixMilli(), now.UnixMilli()}
		// The due rows in claim order come from the queue_due index, a
		// range per priority (there are two), never from a scan of every
		// waiting row and a sort: the claim runs once per window.
		due := `q.state IN ('queued', 'deferred') AND q.priority IN (1, 0) AND q.next_attempt_at <= ?`
		sel := `SELECT q.id FROM queue q INDEXED BY queue_due WHERE ` + due
		if maxBytes > 0 {
			sel = `SELECT q.id, q.msg_id, m.size, m.body_id, COALESCE((SELECT b.size FROM shared_body b WHERE b.id = m.body_id), 0)
				FROM queue q INDEXED BY queue_due JOIN queue_msg m ON m.id = q.msg_id WHERE ` + due
		}
		if len(skip) > 0 {
			sel += ` AND q.domain NOT IN (?` + strings.Repeat(", ?", len(skip)-1) + `)`
			for _, d := range skip {
				args = append(args, d)
			}
		}
		sel += ` ORDER BY q.priority DESC, q.next_attempt_at, q.id LIMIT ?`
		args = append(args, limit)
		q := `UPDATE queue SET state = 'sending', updated_at = ? WHERE id IN (` + sel + `) RETURNING id, msg_id, rcpt, domain, token, attempts`
		if maxBytes > 0 {
			ids, err := claimWithin(ctx, tx, sel, args[1:], maxBytes)
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				return nil
			}
			q = `UPDATE queue SET state = 'sending', updated_at = ? WHERE id IN (SELECT value FROM json_each(?)) RETURNING id, msg_id, rcpt, domain, token, attempts`
			args = []any{now.UnixMilli(), idList(ids)}
		}
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		type key struct {
			msg    int64
			domain string
		}
		idx := map[key]int{}
		for rows.Next() {
			var r QueueRcpt
			var msg int64
			var domain string
			if err := rows.Scan(&r.ID, &msg, &r.Addr, &domain, &r.Token, &r.Attempts); err != nil {
				rows.Close()
				return err
			}
			k := key{msg, domain}
			i, ok := idx[k]
			if !ok {
				i = len(out)
				idx[k] = i
				out = append(out, QueueBatch{MessageID: msg, Domain: domain})
			}
			out[i].Rcpts = append(out[i].Rcpts, r)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(out) == 0 {
			return nil
		}
		// RETURNING gives no order: restore the claim's.
		for i := range out {
			sort.Slice(out[i].Rcpts, func(a, b int) bool { return out[i].Rcpts[a].ID < out[i].Rcpts[b].ID })
		}
		sort.Slice(out, func(a, b int) bool { return out[a].Rcpts[0].ID < out[b].Rcpts[0].ID })
		ids := make([]int64, 0, len(out))
		byMsg := map[int64][]int{}
		for i, b := range out {
			if _, ok := byMsg[b.MessageID]; !ok {
				ids = append(ids, b.MessageID)
			}
			byMsg[b.MessageID] = append(byMsg[b.MessageID], i)
		}
		mrows, err := tx.QueryContext(ctx,
			`SELECT m.id, m.created_at, m.kind, m.ref, m.raw, m.size, m.body_id, COALESCE(b.size, 0)
			FROM queue_msg m LEFT JOIN shared_body b ON b.id = m.body_id
			WHERE m.id IN (SELECT value FROM json_each(?)) ORDER BY m.body_id, m.id`, idList(ids))
		if err != nil {
			return err
		}
		defer mrows.Close()
		wr := &wholeReader{tx: tx}
		defer wr.close()
		for mrows.Next() {
			var id, created, size, bodySize int64
			var kind, ref string
			var raw []byte
			var body sql.NullInt64
			if err := mrows.Scan(&id, &created, &kind, &ref, &raw, &size, &body, &bodySize); err != nil {
				return err
			}
			var open func(context.Context) (io.ReadCloser, error)
			if size > StreamOver && (body.Valid || len(raw) == 0) {
				open = db.messageOpener(id, raw, size, body, bodySize)
				raw = nil
			} else if raw, err = wr.read(ctx, queuePieces, id, raw, size, body); err != nil {
				return err
			}
			for _, i := range byMsg[id] {
				out[i].CreatedAt = time.UnixMilli(created).UTC()
				out[i].Kind, out[i].Ref, out[i].Raw, out[i].Open, out[i].Size = kind, ref, raw, open, size
			}
		}
		return mrows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("claim queue: %w", err)
	}
	return out, nil
}

// claimWithin runs sel (rows id, msg_id, message size, shared body ID
// and size, in claim order) and returns the row IDs to claim: in order,
// while the distinct messages among them, and the shared bodies read to
// make them whole, fit in maxBytes (the first always).
func claimWithin(ctx context.Context, tx *sql.Tx, sel string, args []any, maxBytes int64) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, sel, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	seen := map[int64]bool{}
	bodies := map[int64]bool{}
	var total int64
	for rows.Next() {
		var id, msg, size, bodySize int64
		var body sql.NullInt64
		if err := rows.Scan(&id, &msg, &size, &body, &bodySize); err != nil {
			return nil, err
		}
		if !seen[msg] {
			if body.Valid && !bodies[body.Int64] {
				size += bodySize
			}
			if len(ids) > 0 && total+size > maxBytes {
				break
			}
			seen[msg] = true
			if body.Valid {
				bodies[body.Int64] = true
			}
			total += size
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// idList is ids as a JSON array, for json_each: one statement whatever
// the number of IDs, prepared once per connection.
func idList(ids []int64) string {
	b := make([]byte, 0, 2+len(ids)*8)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}

// RecordQueue stores the outcomes of delivery attempts in one transaction.
// Only rows still in sending are changed: a row dropped or retried by an
// operator meanwhile keeps what the operator did.
func (db *DB) RecordQueue(ctx context.Context, now time.Time, outcomes []QueueOutcome) error {
	if len(outcomes) == 0 {
		return nil
	}
	// Statements run on the transaction directly are prepared once per
	// connection (the store's statement cache); tx.Prepare would parse
	// them again on every call.
	const (
		done    = `UPDATE queue SET state = ?, attempts = attempts + 1, next_attempt_at = ?, last_reply = ?, updated_at = ? WHERE id = ? AND state = 'sending'`
		release = `UPDATE queue SET state = 'queued', updated_at = ? WHERE id = ? AND state = 'sending'`
	)
	err := db.Write(ctx, func(tx *sql.Tx) error {
		var err error
		ms := now.UnixMilli()
		for _, o := range outcomes {
			switch o.State {
			case QueueQueued:
				_, err = tx.ExecContext(ctx, release, ms, o.ID)
			case QueueSent, QueueDeferred, QueueFailed:
				next := ms
				if o.State == QueueDeferred {
					next = o.NextAttempt.UnixMilli()
				}
				_, err = tx.ExecContext(ctx, done, o.State, next, truncate(o.Reply, maxReplyLen), ms, o.ID)
			default:
				err = fmt.Errorf("row %d: %q is not an outcome", o.ID, o.State)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record %d delivery outcomes: %w", len(outcomes), err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// NextQueueDue returns when the earliest queued or deferred row is due;
// ok is false when there is none.
func (db *DB) NextQueueDue(ctx context.Context) (due time.Time, ok bool, err error) {
	err = db.Read(ctx, func(tx *sql.Tx) error {
		var ms sql.NullInt64
		// One index lookup per priority (queue_due), not a scan of every
		// waiting row: the worker asks after each claim.
		if err := tx.QueryRowContext(ctx, `SELECT MIN(t) FROM (
			SELECT * FROM (SELECT next_attempt_at AS t FROM queue WHERE state IN ('queued', 'deferred') AND priority = 1 ORDER BY next_attempt_at LIMIT 1)
			UNION ALL
			SELECT * FROM (SELECT next_attempt_at AS t FROM queue WHERE state IN ('queued', 'deferred') AND priority = 0 ORDER BY next_attempt_at LIMIT 1))`).Scan(&ms); err != nil {
			return err
		}
		if ms.Valid {
			due, ok = time.UnixMilli(ms.Int64).UTC(), true
		}
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next queue due: %w", err)
	}
	return due, ok, nil
}

// QueueFilter selects rows for ListQueue.
type QueueFilter struct {
	// States to show; all states when empty.
	States []string
	// Limit is the maximum number of rows (default 100).
	Limit int
}

const entryColumns = `q.id, q.msg_id, q.rcpt, q.token, q.state, q.attempts, q.next_attempt_at, q.last_reply, q.created_at, q.updated_at, m.kind, m.ref`

func scanEntry(s interface{ Scan(...any) error }) (*QueueEntry, error) {
	var e QueueEntry
	var next, created, updated int64
	if err := s.Scan(&e.ID, &e.MessageID, &e.Rcpt, &e.Token, &e.State, &e.Attempts, &next, &e.LastReply, &created, &updated, &e.Kind, &e.Ref); err != nil {
		return nil, err
	}
	e.NextAttempt = time.UnixMilli(next).UTC()
	e.CreatedAt = time.UnixMilli(created).UTC()
	e.UpdatedAt = time.UnixMilli(updated).UTC()
	return &e, nil
}

// ListQueue returns queue rows in ID order.
func (db *DB) ListQueue(ctx context.Context, f QueueFilter) ([]QueueEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var out []QueueEntry
	err := db.Read(ctx, func(tx *sql.Tx) error {
		q := `SELECT ` + entryColumns + ` FROM queue q JOIN queue_msg m ON m.id = q.msg_id`
		var args []any
		if len(f.States) > 0 {
			q += ` WHERE q.state IN (?` + strings.Repeat(", ?", len(f.States)-1) + `)`
			for _, s := range f.States {
				args = append(args, s)
			}
		}
		q += ` ORDER BY q.id LIMIT ?`
		args = append(args, f.Limit)
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanEntry(rows)
			if err != nil {
				return err
			}
			out = append(out, *e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list queue: %w", err)
	}
	return out, nil
}

// QueueEntry returns the queue row id.
func (db *DB) QueueEntry(ctx context.Context, id int64) (*QueueEntry, error) {
	var e *QueueEntry
	err := db.Read(ctx, func(tx *sql.Tx) error {
		var err error
		e, err = queueEntryTx(ctx, tx, `q.id = ?`, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("queue row %d: %w", id, err)
	}
	return e, nil
}

func queueEntryTx(ctx context.Context, tx *sql.Tx, where string, args ...any) (*QueueEntry, error) {
	e, err := scanEntry(tx.QueryRowContext(ctx,
		`SELECT `+entryColumns+` FROM queue q JOIN queue_msg m ON m.id = q.msg_id WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return e, err
}

// ErrQueueState is returned when an operator action does not fit a row's
// state.
var ErrQueueState = errors.New("not possible in this state")

// RetryQueue makes a queued, deferred or failed row due now. Its attempts
// are kept; a failed row past its maximum age gets one more try.
func (db *DB) RetryQueue(ctx context.Context, id int64, now time.Time) error {
	err := db.Write(ctx, func(tx *sql.Tx) error {
		e, err := queueEntryTx(ctx, tx, `q.id = ?`, id)
		if err != nil {
			return err
		}
		switch {
		case e.State == QueueFailed && strings.HasPrefix(e.LastReply, DroppedPrefix):
			return fmt.Errorf("row was %s; it cannot be retried: %w", e.LastReply, ErrQueueState)
		case e.State == QueueQueued, e.State == QueueDeferred, e.State == QueueFailed:
		default:
			return fmt.Errorf("row is %s; only queued, deferred or failed mail can be retried: %w", e.State, ErrQueueState)
		}
		_, err = tx.ExecContext(ctx,
			`UPDATE queue SET state = 'queued', next_attempt_at = ?, updated_at = ? WHERE id = ?`,
			now.UnixMilli(), now.UnixMilli(), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("retry queue row %d: %w", id, err)
	}
	return nil
}

// DropQueue deletes a row (and its message once no row uses it) and
// returns the state it had. A row dropped while sending may still be
// delivered by the attempt under way.
func (db *DB) DropQueue(ctx context.Context, id int64) (string, error) {
	var state string
	err := db.Write(ctx, func(tx *sql.Tx) error {
		var msg int64
		err := tx.QueryRowContext(ctx, `DELETE FROM queue WHERE id = ? RETURNING msg_id, state`, id).Scan(&msg, &state)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx,
			`DELETE FROM queue_msg WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM queue WHERE msg_id = ?1)
				AND NOT EXISTS (SELECT 1 FROM post_copy WHERE queue_msg = ?1)`, msg)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("drop queue row %d: %w", id, err)
	}
	return state, nil
}

// QueueEntryByToken returns the row whose VERP token is token.
func (db *DB) QueueEntryByToken(ctx context.Context, token string) (*QueueEntry, error) {
	var e *QueueEntry
	err := db.Read(ctx, func(tx *sql.Tx) error {
		var err error
		e, err = queueEntryTx(ctx, tx, `q.token = ?`, strings.ToLower(token))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("queue row for token: %w", err)
	}
	return e, nil
}

// RecordBounce ties a bounce to its queue row: the row of token, or, when
// rcpt names another recipient of the same message (one SMTP transaction
// carries several recipients under the first one's token), that row. A
// permanent failure (a "failed" DSN action, whatever the status code)
// marks the row failed; a delay report only updates its last reply.
// failed reports whether the row became failed now, so the caller tells
// the failure hook once.
func (db *DB) RecordBounce(ctx context.Context, token, rcpt, status, diagnostic string, permanent bool, now time.Time) (e *QueueEntry, failed bool, err error) {
	err = db.Write(ctx, func(tx *sql.Tx) error {
		var err error
		e, err = queueEntryTx(ctx, tx, `q.token = ?`, strings.ToLower(token))
		if err != nil {
			return err
		}
		if rcpt != "" && !strings.EqualFold(rcpt, e.Rcpt) {
			other, err := queueEntryTx(ctx, tx, `q.msg_id = ? AND lower(q.rcpt) = lower(?)`, e.MessageID, rcpt)
			if err == nil {
				e = other
			} else if !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		reply := strings.TrimSpace("bounce " + status + " " + diagnostic)
		state := e.State
		if permanent && state != QueueFailed {
			state, failed = QueueFailed, true
		}
		_, err = tx.ExecContext(ctx, `UPDATE queue SET state = ?, last_reply = ?, updated_at = ? WHERE id = ?`,
			state, truncate(reply, maxReplyLen), now.UnixMilli(), e.ID)
		e.State, e.LastReply, e.UpdatedAt = state, truncate(reply, maxReplyLen), time.UnixMilli(now.UnixMilli()).UTC()
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("record bounce: %w", err)
	}
	return e, failed, nil
}
