package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestGroupCommitFailureIsolated: many writers at once, every third
// failing after it wrote. The failing ones leave nothing behind, the others
// all commit, and each caller learns its own outcome.
func TestGroupCommitFailureIsolated(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	const n = 90
	errBoom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.Write(ctx, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO spool (received_at, remote_addr, helo, mail_from, size, raw) VALUES (?, '', '', ?, 0, x'')`,
					time.Now().UnixMilli(), fmt.Sprintf("w%d@example.net", i)); err != nil {
					return err
				}
				if i%3 == 0 {
					return errBoom
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i%3 == 0 && !errors.Is(err, errBoom) || i%3 != 0 && err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	var got int
	var bad int
	if err := db.Read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM spool`).Scan(&got); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT mail_from FROM spool`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var from string
			var i int
			rows.Scan(&from)
			fmt.Sscanf(from, "w%d@", &i)
			if i%3 == 0 {
				bad++
			}
		}
		return rows.Err()
	}); err != nil {
		t.Fatal(err)
	}
	if got != n-n/3 || bad != 0 {
		t.Errorf("%d rows, %d of them from failed writes; want %d and 0", got, bad, n-n/3)
	}
}

// TestWritePanicReachesCaller: a panic inside a write is the caller's,
// the write is undone and the writer goes on.
func TestWritePanicReachesCaller(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	func() {
		defer func() {
			if v := recover(); v != "bad write" {
				t.Fatalf("recovered %v", v)
			}
		}()
		db.Write(ctx, func(tx *sql.Tx) error {
			tx.ExecContext(ctx, `INSERT INTO spool (received_at, remote_addr, helo, mail_from, size, raw) VALUES (0, '', '', 'p@example.net', 0, x'')`)
			panic("bad write")
		})
	}()
	if _, err := db.Spool(ctx, Envelope{MailFrom: "ok@example.net", Rcpts: []string{"security@example.org"}}, []byte("x")); err != nil {
		t.Fatal(err)
	}
	var n int
	db.Read(ctx, func(tx *sql.Tx) error { return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM spool`).Scan(&n) })
	if n != 1 {
		t.Errorf("%d spool rows, want 1", n)
	}
}

// TestStatementCacheNested: the same query run again while its rows are
// still being read gets a statement of its own.
func TestStatementCacheNested(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	for i := range 3 {
		if _, err := db.Spool(ctx, Envelope{MailFrom: fmt.Sprintf("n%d@example.net", i), Rcpts: []string{"security@example.org"}}, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	const q = `SELECT id FROM spool WHERE id >= ? ORDER BY id`
	var pairs int
	err := db.Write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, q, 1)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			inner, err := tx.QueryContext(ctx, q, id)
			if err != nil {
				return err
			}
			for inner.Next() {
				pairs++
			}
			inner.Close()
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if pairs != 6 {
		t.Errorf("%d pairs, want 6 (3+2+1)", pairs)
	}
}
