package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Stats counts rows by state, for monitoring.
type Stats struct {
	Spool     map[string]int
	Queue     map[string]int
	Incidents map[string]int
	// LastReleaseLag is published_at less the public date of the incident
	// released last (negative when released early); HasRelease is false
	// when none was.
	LastReleaseLag time.Duration
	HasRelease     bool
}

// Stats reads the counts in one read transaction.
func (db *DB) Stats(ctx context.Context) (Stats, error) {
	s := Stats{Spool: map[string]int{}, Queue: map[string]int{}, Incidents: map[string]int{}}
	err := db.Read(ctx, func(tx *sql.Tx) error {
		for _, q := range []struct {
			query string
			into  map[string]int
		}{
			{"SELECT state, count(*) FROM spool GROUP BY state", s.Spool},
			{"SELECT state, count(*) FROM queue GROUP BY state", s.Queue},
			{"SELECT state, count(*) FROM incident GROUP BY state", s.Incidents},
		} {
			rows, err := tx.QueryContext(ctx, q.query)
			if err != nil {
				return err
			}
			for rows.Next() {
				var st string
				var n int
				if err := rows.Scan(&st, &n); err != nil {
					rows.Close()
					return err
				}
				q.into[st] = n
			}
			if err := rows.Close(); err != nil {
				return err
			}
		}
		var lag int64
		err := tx.QueryRowContext(ctx, `SELECT published_at - embargo_at FROM incident
			WHERE published_at > 0 AND embargo_at > 0 ORDER BY published_at DESC LIMIT 1`).Scan(&lag)
		switch {
		case err == sql.ErrNoRows:
		case err != nil:
			return err
		default:
			s.LastReleaseLag, s.HasRelease = time.Duration(lag)*time.Millisecond, true
		}
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("read stats: %w", err)
	}
	return s, nil
}

// Ping checks that the database can be read and that the writer can take
// its lock now.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.Read(ctx, func(tx *sql.Tx) error {
		var n int
		return tx.QueryRowContext(ctx, "SELECT count(*) FROM incident").Scan(&n)
	}); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if err := db.Write(ctx, func(*sql.Tx) error { return nil }); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
