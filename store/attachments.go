package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Attachment is a file sent with an incident's pre-notification, sealed
// to the project key at rest.
type Attachment struct {
	ID          int64
	Incident    string
	Name        string
	ContentType string
	Size        int64
	Sealed      []byte
	AddedAt     time.Time
	AddedBy     string
}

// AddAttachmentTx records a file of an incident and returns its ID.
func AddAttachmentTx(ctx context.Context, tx *sql.Tx, a *Attachment) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO incident_attachment (incident, name, content_type, size, sealed, added_at, added_by)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, a.Incident, a.Name, a.ContentType, a.Size, a.Sealed, ms(a.AddedAt), a.AddedBy)
	if err != nil {
		return 0, fmt.Errorf("record attachment %s of %s: %w", a.Name, a.Incident, err)
	}
	return res.LastInsertId()
}

// AttachmentsTx returns the files of an incident, oldest first.
func AttachmentsTx(ctx context.Context, tx *sql.Tx, incident string) ([]Attachment, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, incident, name, content_type, size, sealed, added_at, added_by
		FROM incident_attachment WHERE incident = ? ORDER BY id`, incident)
	if err != nil {
		return nil, fmt.Errorf("attachments of %s: %w", incident, err)
	}
	defer rows.Close()
	var out []Attachment
	for rows.Next() {
		var a Attachment
		var at int64
		if err := rows.Scan(&a.ID, &a.Incident, &a.Name, &a.ContentType, &a.Size, &a.Sealed, &at, &a.AddedBy); err != nil {
			return nil, fmt.Errorf("attachments of %s: %w", incident, err)
		}
		a.AddedAt = fromMS(at)
		out = append(out, a)
	}
	return out, rows.Err()
}

// MarkAttachmentSentTx records that a downstream received a file.
func MarkAttachmentSentTx(ctx context.Context, tx *sql.Tx, incident, email string, id int64, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO downstream_attachment (incident, email, attachment_id, sent_at) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, incident, strings.ToLower(email), id, ms(at))
	if err != nil {
		return fmt.Errorf("record attachment %d sent to %s: %w", id, email, err)
	}
	return nil
}

// ReceivedAttachmentsTx returns, per downstream address, the names of the
// files it received.
func ReceivedAttachmentsTx(ctx context.Context, tx *sql.Tx, incident string) (map[string][]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT d.email, a.name FROM downstream_attachment d
		JOIN incident_attachment a ON a.id = d.attachment_id WHERE d.incident = ? ORDER BY d.email, a.id`, incident)
	if err != nil {
		return nil, fmt.Errorf("received attachments of %s: %w", incident, err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var e, n string
		if err := rows.Scan(&e, &n); err != nil {
			return nil, fmt.Errorf("received attachments of %s: %w", incident, err)
		}
		out[e] = append(out[e], n)
	}
	return out, rows.Err()
}
