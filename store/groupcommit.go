package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// maxBatch is the most write transactions committed together.
const maxBatch = 128

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("database closed")

// writeReq is one call of Write waiting for the writer.
type writeReq struct {
	ctx  context.Context
	fn   func(*sql.Tx) error
	done chan writeResult
}

type writeResult struct {
	err error
	// panicked is what fn panicked with; Write panics with it again in
	// the caller's goroutine.
	panicked any
}

// writer runs the write transactions asked for with Write. Those that
// arrive while a commit is in progress are run together in the next
// transaction, each inside a savepoint of its own (one that fails is
// rolled back alone), and committed with one sync of the log: each caller
// still returns only once its own changes are durable.
func (db *DB) writer() {
	defer close(db.writerDone)
	for {
		var first *writeReq
		select {
		case first = <-db.writes:
		case <-db.stopWriter:
			return
		}
		batch := []*writeReq{first}
	more:
		for len(batch) < maxBatch {
			select {
			case r := <-db.writes:
				batch = append(batch, r)
			default:
				break more
			}
		}
		db.runBatch(batch)
	}
}

func (db *DB) runBatch(batch []*writeReq) {
	results := make([]writeResult, len(batch))
	defer func() {
		for i, r := range batch {
			r.done <- results[i]
		}
	}()
	failAll := func(err error) {
		for i := range results {
			if results[i].err == nil && results[i].panicked == nil {
				results[i].err = err
			}
		}
	}
	tx, err := db.write.BeginTx(context.Background(), nil)
	if err != nil {
		failAll(fmt.Errorf("begin: %w", err))
		return
	}
	single := len(batch) == 1
	ok := 0
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i].err = fmt.Errorf("begin: %w", err)
			continue
		}
		if !single {
			if _, err := tx.Exec("SAVEPOINT cvd_write"); err != nil {
				failAll(fmt.Errorf("savepoint: %w", err))
				tx.Rollback()
				return
			}
		}
		err, p := call(r.fn, tx)
		results[i] = writeResult{err: err, panicked: p}
		if err == nil && p == nil {
			ok++
			if !single {
				if _, err := tx.Exec("RELEASE cvd_write"); err != nil {
					failAll(fmt.Errorf("release savepoint: %w", err))
					tx.Rollback()
					return
				}
			}
			continue
		}
		if single {
			results[i].err = errors.Join(err, rollback(tx))
			return
		}
		// Undo this one alone; if SQLite rolled back the whole
		// transaction (as it does on some errors), nothing of the batch
		// is kept and every caller is told.
		if _, rerr := tx.Exec("ROLLBACK TO cvd_write"); rerr != nil {
			failAll(fmt.Errorf("rolled back with another write of the same commit: %w", errors.Join(err, rerr)))
			tx.Rollback()
			return
		}
		if _, rerr := tx.Exec("RELEASE cvd_write"); rerr != nil {
			failAll(fmt.Errorf("rolled back with another write of the same commit: %w", errors.Join(err, rerr)))
			tx.Rollback()
			return
		}
	}
	if ok == 0 {
		tx.Rollback()
		return
	}
	if err := tx.Commit(); err != nil {
		failAll(fmt.Errorf("commit: %w", err))
	}
}

// call runs fn, turning a panic into a value.
func call(fn func(*sql.Tx) error, tx *sql.Tx) (err error, p any) {
	defer func() {
		if v := recover(); v != nil {
			p = v
		}
	}()
	return fn(tx), nil
}
