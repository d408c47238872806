package store

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// Snapshot writes a consistent copy of the database, as of one moment, to
// path (which must not exist) with VACUUM INTO. It reads through its own
// connection: writers go on meanwhile, and what they commit after the
// snapshot began is not in it.
func (db *DB) Snapshot(ctx context.Context, path string) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("snapshot %s to %s: the file exists", db.path, path)
	}
	if _, err := db.read.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("snapshot %s to %s: %w", db.path, path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("snapshot %s to %s: %w", db.path, path, err)
	}
	return nil
}

// IntegrityCheck runs PRAGMA integrity_check and foreign_key_check and
// returns an error listing what they found, nil when the database is sound.
func (db *DB) IntegrityCheck(ctx context.Context) error {
	var problems []string
	rows, err := db.read.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return fmt.Errorf("integrity check of %s: %w", db.path, err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return fmt.Errorf("integrity check of %s: %w", db.path, err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("integrity check of %s: %w", db.path, err)
	}
	rows, err = db.read.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return fmt.Errorf("foreign key check of %s: %w", db.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var table, parent string
		var rowid, fk any
		if err := rows.Scan(&table, &rowid, &parent, &fk); err != nil {
			return fmt.Errorf("foreign key check of %s: %w", db.path, err)
		}
		problems = append(problems, fmt.Sprintf("%s row %v refers to a missing %s row", table, rowid, parent))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("foreign key check of %s: %w", db.path, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("database %s is damaged: %s", db.path, strings.Join(problems, "; "))
	}
	return nil
}
