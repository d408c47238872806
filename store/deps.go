package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// DependencyMatch is one component an upstream advisory matched.
type DependencyMatch struct {
	Advisory  string
	Ecosystem string
	Name      string
	Version   string
	Source    string
	FoundAt   time.Time
}

// DependencyIncidentTx returns the incident opened for advisory, or
// ErrNotFound.
func DependencyIncidentTx(ctx context.Context, tx *sql.Tx, advisory string) (string, error) {
	var id string
	err := tx.QueryRowContext(ctx, `SELECT incident FROM dependency_advisory WHERE advisory = ?`, advisory).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("dependency advisory %s: %w", advisory, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("dependency advisory %s: %w", advisory, err)
	}
	return id, nil
}

// AddDependencyAdvisoryTx records that incident id was opened for
// advisory; a second one for the same advisory fails with ErrExists.
func AddDependencyAdvisoryTx(ctx context.Context, tx *sql.Tx, advisory, id, modified string, at time.Time) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO dependency_advisory (advisory, incident, modified, opened_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (advisory) DO NOTHING`, advisory, id, modified, ms(at))
	if err != nil {
		return fmt.Errorf("record dependency advisory %s: %w", advisory, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("dependency advisory %s: %w", advisory, ErrExists)
	}
	return nil
}

// AddDependencyMatchTx records a match; it reports false when the same
// component at the same version was recorded before.
func AddDependencyMatchTx(ctx context.Context, tx *sql.Tx, m DependencyMatch) (bool, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO dependency_match (advisory, ecosystem, name, version, source, found_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, m.Advisory, m.Ecosystem, m.Name, m.Version, m.Source, ms(m.FoundAt))
	if err != nil {
		return false, fmt.Errorf("record match of %s: %w", m.Advisory, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// DependencyMatchesTx returns the matches recorded for incident id's
// advisory, oldest first.
func DependencyMatchesTx(ctx context.Context, tx *sql.Tx, id string) ([]DependencyMatch, error) {
	rows, err := tx.QueryContext(ctx, `SELECT m.advisory, m.ecosystem, m.name, m.version, m.source, m.found_at
		FROM dependency_match m JOIN dependency_advisory a ON a.advisory = m.advisory WHERE a.incident = ?
		ORDER BY m.found_at, m.name, m.version`, id)
	if err != nil {
		return nil, fmt.Errorf("matches of %s: %w", id, err)
	}
	defer rows.Close()
	var out []DependencyMatch
	for rows.Next() {
		var m DependencyMatch
		var at int64
		if err := rows.Scan(&m.Advisory, &m.Ecosystem, &m.Name, &m.Version, &m.Source, &at); err != nil {
			return nil, fmt.Errorf("matches of %s: %w", id, err)
		}
		m.FoundAt = fromMS(at)
		out = append(out, m)
	}
	return out, rows.Err()
}

// LastDependencyCheckTx returns when the last dependency check ran (zero:
// never) and what it found.
func LastDependencyCheckTx(ctx context.Context, tx *sql.Tx) (time.Time, string, error) {
	var at int64
	var result string
	err := tx.QueryRowContext(ctx, `SELECT checked_at, result FROM dependency_check WHERE id = 1`).Scan(&at, &result)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, "", nil
	}
	if err != nil {
		return time.Time{}, "", fmt.Errorf("last dependency check: %w", err)
	}
	return fromMS(at), result, nil
}

// SetDependencyCheckTx records a dependency check.
func SetDependencyCheckTx(ctx context.Context, tx *sql.Tx, at time.Time, result string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO dependency_check (id, checked_at, result) VALUES (1, ?, ?)
		ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at, result = excluded.result`, ms(at), result)
	if err != nil {
		return fmt.Errorf("record dependency check: %w", err)
	}
	return nil
}
