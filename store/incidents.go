package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Incident states (package embargo owns the transitions).
const (
	IncidentNew         = "new"
	IncidentTriage      = "triage"
	IncidentConfirmed   = "confirmed"
	IncidentRejected    = "rejected"
	IncidentDuplicate   = "duplicate"
	IncidentFixing      = "fixing"
	IncidentPrenotified = "prenotified"
	IncidentPublished   = "published"
	IncidentClosed      = "closed"
)

// Incident is one security report and what the team decided about it.
// Zero times mean "not yet".
type Incident struct {
	ID           string
	Year, Seq    int
	State        string
	Privacy      string
	Reporter     string
	ReporterName string
	SpoolID      int64
	// Facts is the incident's facts as JSON; package embargo defines them.
	Facts           []byte
	EmbargoAt       time.Time
	EmbargoOverride string
	FirstNoticeAt   time.Time
	AckedAt         time.Time
	EscalatedAt     time.Time
	PublishedAt     time.Time
	ClosedAt        time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// IncidentEvent is one entry of an incident's timeline.
type IncidentEvent struct {
	ID       int64
	Incident string
	At       time.Time
	Actor    string
	Signer   string
	Kind     string
	Detail   string
}

// Downstream is a downstream told of an incident.
type Downstream struct {
	Incident   string
	Email      string
	Name       string
	NotifiedAt time.Time
	AckedAt    time.Time
	AckHow     string
	RemindedAt time.Time
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// NextIncidentIDTx returns the next incident ID of year ("2026-001") and
// its sequence number, skipping IDs that name an existing list.
func NextIncidentIDTx(ctx context.Context, tx *sql.Tx, year int) (string, int, error) {
	var seq int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) + 1 FROM incident WHERE year = ?`, year).Scan(&seq); err != nil {
		return "", 0, fmt.Errorf("next incident ID: %w", err)
	}
	// A list that already has the name (created by hand before such names
	// were refused) is skipped, so that it never blocks the intake.
	for {
		id := fmt.Sprintf("%04d-%03d", year, seq)
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM list WHERE name = ?`, id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return id, seq, nil
		}
		if err != nil {
			return "", 0, fmt.Errorf("next incident ID: %w", err)
		}
		seq++
	}
}

// CreateIncidentTx records a new incident.
func CreateIncidentTx(ctx context.Context, tx *sql.Tx, in *Incident) error {
	facts := in.Facts
	if len(facts) == 0 {
		facts = []byte("{}")
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO incident (id, year, seq, state, privacy, reporter, reporter_name, spool_id, facts, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		in.ID, in.Year, in.Seq, in.State, in.Privacy, strings.ToLower(in.Reporter), in.ReporterName, nullID(in.SpoolID), facts,
		ms(in.CreatedAt), ms(in.CreatedAt))
	if err != nil {
		return fmt.Errorf("create incident %s: %w", in.ID, err)
	}
	in.UpdatedAt = in.CreatedAt
	return nil
}

const incidentCols = `id, year, seq, state, privacy, reporter, reporter_name, COALESCE(spool_id, 0), facts, embargo_at, embargo_override,
	first_notice_at, acked_at, escalated_at, published_at, closed_at, created_at, updated_at`

func scanIncident(s interface{ Scan(...any) error }) (*Incident, error) {
	var in Incident
	var emb, first, acked, esc, pub, closed, created, updated int64
	err := s.Scan(&in.ID, &in.Year, &in.Seq, &in.State, &in.Privacy, &in.Reporter, &in.ReporterName, &in.SpoolID, &in.Facts,
		&emb, &in.EmbargoOverride, &first, &acked, &esc, &pub, &closed, &created, &updated)
	if err != nil {
		return nil, err
	}
	in.EmbargoAt, in.FirstNoticeAt, in.AckedAt, in.EscalatedAt = fromMS(emb), fromMS(first), fromMS(acked), fromMS(esc)
	in.PublishedAt, in.ClosedAt, in.CreatedAt, in.UpdatedAt = fromMS(pub), fromMS(closed), fromMS(created), fromMS(updated)
	return &in, nil
}

// IncidentTx returns the incident id, or ErrNotFound.
func IncidentTx(ctx context.Context, tx *sql.Tx, id string) (*Incident, error) {
	in, err := scanIncident(tx.QueryRowContext(ctx, `SELECT `+incidentCols+` FROM incident WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("incident %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("incident %s: %w", id, err)
	}
	return in, nil
}

// IncidentBySpoolTx returns the incident opened by spooled message
// spoolID, or ErrNotFound.
func IncidentBySpoolTx(ctx context.Context, tx *sql.Tx, spoolID int64) (*Incident, error) {
	in, err := scanIncident(tx.QueryRowContext(ctx, `SELECT `+incidentCols+` FROM incident WHERE spool_id = ?`, spoolID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("incident of spool %d: %w", spoolID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("incident of spool %d: %w", spoolID, err)
	}
	return in, nil
}

// IncidentsTx returns incidents, oldest first; with states given, only
// incidents in one of them.
func IncidentsTx(ctx context.Context, tx *sql.Tx, states ...string) ([]*Incident, error) {
	q := `SELECT ` + incidentCols + ` FROM incident`
	var args []any
	if len(states) > 0 {
		q += ` WHERE state IN (?` + strings.Repeat(", ?", len(states)-1) + `)`
		for _, s := range states {
			args = append(args, s)
		}
	}
	rows, err := tx.QueryContext(ctx, q+` ORDER BY year, seq`, args...)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	defer rows.Close()
	var out []*Incident
	for rows.Next() {
		in, err := scanIncident(rows)
		if err != nil {
			return nil, fmt.Errorf("list incidents: %w", err)
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// UpdateIncidentTx writes the incident's mutable fields. With expectState
// set, it changes nothing and returns false unless the stored state is
// still expectState: the guard that makes a release happen once.
func UpdateIncidentTx(ctx context.Context, tx *sql.Tx, in *Incident, expectState string, at time.Time) (bool, error) {
	q := `UPDATE incident SET state = ?, privacy = ?, reporter = ?, reporter_name = ?, facts = ?, embargo_at = ?, embargo_override = ?,
		first_notice_at = ?, acked_at = ?, escalated_at = ?, published_at = ?, closed_at = ?, updated_at = ? WHERE id = ?`
	args := []any{in.State, in.Privacy, strings.ToLower(in.Reporter), in.ReporterName, in.Facts, ms(in.EmbargoAt), in.EmbargoOverride,
		ms(in.FirstNoticeAt), ms(in.AckedAt), ms(in.EscalatedAt), ms(in.PublishedAt), ms(in.ClosedAt), ms(at), in.ID}
	if expectState != "" {
		q += ` AND state = ?`
		args = append(args, expectState)
	}
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("update incident %s: %w", in.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("update incident %s: %w", in.ID, err)
	}
	if n == 1 {
		in.UpdatedAt = at
	}
	return n == 1, nil
}

// AddIncidentEventTx appends to an incident's timeline.
func AddIncidentEventTx(ctx context.Context, tx *sql.Tx, ev *IncidentEvent) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO incident_event (incident, at, actor, signer, kind, detail) VALUES (?, ?, ?, ?, ?, ?)`,
		ev.Incident, ms(ev.At), ev.Actor, ev.Signer, ev.Kind, ev.Detail)
	if err != nil {
		return fmt.Errorf("record %s event of incident %s: %w", ev.Kind, ev.Incident, err)
	}
	ev.ID, err = res.LastInsertId()
	return err
}

// IncidentEventsTx returns an incident's timeline, oldest first.
func IncidentEventsTx(ctx context.Context, tx *sql.Tx, id string) ([]IncidentEvent, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, incident, at, actor, signer, kind, detail FROM incident_event WHERE incident = ? ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("timeline of %s: %w", id, err)
	}
	defer rows.Close()
	var out []IncidentEvent
	for rows.Next() {
		var ev IncidentEvent
		var at int64
		if err := rows.Scan(&ev.ID, &ev.Incident, &at, &ev.Actor, &ev.Signer, &ev.Kind, &ev.Detail); err != nil {
			return nil, fmt.Errorf("timeline of %s: %w", id, err)
		}
		ev.At = fromMS(at)
		out = append(out, ev)
	}
	return out, rows.Err()
}

// AddIncidentThreadTx records that Message-ID messageID belongs to the
// incident.
func AddIncidentThreadTx(ctx context.Context, tx *sql.Tx, messageID, id string) error {
	if messageID == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO incident_thread (message_id, incident) VALUES (?, ?) ON CONFLICT DO NOTHING`, messageID, id); err != nil {
		return fmt.Errorf("record thread of incident %s: %w", id, err)
	}
	return nil
}

// IncidentByThreadTx returns the ID of the incident one of messageIDs
// belongs to (a recorded thread message or a post on its list), or
// ErrNotFound.
func IncidentByThreadTx(ctx context.Context, tx *sql.Tx, messageIDs []string) (string, error) {
	for _, mid := range messageIDs {
		if mid == "" {
			continue
		}
		var id string
		err := tx.QueryRowContext(ctx, `SELECT incident FROM incident_thread WHERE message_id = ?
			UNION ALL SELECT i.id FROM post p JOIN list l ON l.id = p.list_id JOIN incident i ON i.id = l.name WHERE p.message_id = ?
			LIMIT 1`, mid, mid).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("incident of thread: %w", err)
		}
		return id, nil
	}
	return "", ErrNotFound
}

// AddDownstreamTx records that a downstream was told of an incident; a
// downstream told before keeps its first notice time.
func AddDownstreamTx(ctx context.Context, tx *sql.Tx, d *Downstream) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO incident_downstream (incident, email, name, notified_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (incident, email) DO NOTHING`, d.Incident, strings.ToLower(d.Email), d.Name, ms(d.NotifiedAt))
	if err != nil {
		return fmt.Errorf("record downstream %s of %s: %w", d.Email, d.Incident, err)
	}
	return nil
}

// DownstreamsTx returns the downstreams told of an incident.
func DownstreamsTx(ctx context.Context, tx *sql.Tx, id string) ([]Downstream, error) {
	rows, err := tx.QueryContext(ctx, `SELECT incident, email, name, notified_at, acked_at, ack_how, reminded_at FROM incident_downstream
		WHERE incident = ? ORDER BY notified_at, email`, id)
	if err != nil {
		return nil, fmt.Errorf("downstreams of %s: %w", id, err)
	}
	defer rows.Close()
	var out []Downstream
	for rows.Next() {
		var d Downstream
		var n, a, r int64
		if err := rows.Scan(&d.Incident, &d.Email, &d.Name, &n, &a, &d.AckHow, &r); err != nil {
			return nil, fmt.Errorf("downstreams of %s: %w", id, err)
		}
		d.NotifiedAt, d.AckedAt, d.RemindedAt = fromMS(n), fromMS(a), fromMS(r)
		out = append(out, d)
	}
	return out, rows.Err()
}

// AckDownstreamTx records a downstream's acknowledgement; it reports
// false when the downstream was not told or had acknowledged already.
func AckDownstreamTx(ctx context.Context, tx *sql.Tx, id, email, how string, at time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE incident_downstream SET acked_at = ?, ack_how = ? WHERE incident = ? AND email = ? AND acked_at = 0`,
		ms(at), how, id, strings.ToLower(email))
	if err != nil {
		return false, fmt.Errorf("acknowledgement of %s by %s: %w", id, email, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// AckDownstreamsByReplyTx marks as acknowledged every silent downstream
// of the incident who posted to its list since being told, and returns
// their addresses.
func AckDownstreamsByReplyTx(ctx context.Context, tx *sql.Tx, id string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `UPDATE incident_downstream AS d SET ack_how = 'reply', acked_at = (
			SELECT MIN(p.received_at) FROM post p JOIN list l ON l.id = p.list_id
			WHERE l.name = d.incident AND p.sender = d.email AND p.received_at >= d.notified_at AND p.status IN ('distributed', 'command') AND p.signature = 'good')
		WHERE d.incident = ? AND d.acked_at = 0 AND EXISTS (
			SELECT 1 FROM post p JOIN list l ON l.id = p.list_id
			WHERE l.name = d.incident AND p.sender = d.email AND p.received_at >= d.notified_at AND p.status IN ('distributed', 'command') AND p.signature = 'good')
		RETURNING email`, id)
	if err != nil {
		return nil, fmt.Errorf("acknowledgements by reply of %s: %w", id, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// SetDownstreamRemindedTx records that a silent downstream was reminded.
func SetDownstreamRemindedTx(ctx context.Context, tx *sql.Tx, id, email string, at time.Time) error {
	if _, err := tx.ExecContext(ctx, `UPDATE incident_downstream SET reminded_at = ? WHERE incident = ? AND email = ?`, ms(at), id, strings.ToLower(email)); err != nil {
		return fmt.Errorf("reminder of %s to %s: %w", id, email, err)
	}
	return nil
}
