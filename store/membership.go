package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// MemberListsTx returns the names of the lists of kind that email belongs
// to (active or frozen, not removed).
func MemberListsTx(ctx context.Context, tx *sql.Tx, email, kind string) ([]string, error) {
	return listNames(ctx, tx, `SELECT l.name FROM member m JOIN list l ON l.id = m.list_id
		WHERE m.email = ? AND l.kind = ? AND m.state != 'removed' ORDER BY l.name`, strings.ToLower(email), kind)
}

// ListNamesTx returns the names of all lists of kind.
func ListNamesTx(ctx context.Context, tx *sql.Tx, kind string) ([]string, error) {
	return listNames(ctx, tx, `SELECT name FROM list WHERE kind = ? ORDER BY name`, kind)
}

func listNames(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list names: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list names: %w", err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
