// Package store owns cvd's SQLite database: the schema, its numbered
// migrations, and the transactions the rest of cvd runs on it. There is one
// writer connection and a pool of read-only connections.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// ErrTooNew is returned by Open when the database was written by a newer cvd.
var ErrTooNew = errors.New("database schema is newer than this cvd")

// DB is an open cvd database.
type DB struct {
	path  string
	write *sql.DB
	read  *sql.DB

	// writes feed the writer goroutine (see groupcommit.go).
	writes     chan *writeReq
	stopWriter chan struct{}
	writerDone chan struct{}

	// checkpoint copies the write-ahead log into the database in the
	// background, so that commits never wait for it.
	checkpoint     *sql.DB
	stopCheckpoint chan struct{}
	checkpointDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// checkpointEvery is how often the background checkpoint runs.
const checkpointEvery = 2 * time.Second

func init() {
	// DSN pragmas are fixed here, never taken from configuration, but refuse
	// anything unexpected all the same.
	sqlite.StrictPragmas(true)
}

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Set("mode", "ro")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		// The spool promises that a 250 means the mail is on disk.
		q.Add("_pragma", "synchronous(FULL)")
		// Checkpoints run in the background (see checkpointLoop).
		q.Add("_pragma", "wal_autocheckpoint(0)")
		q.Set("_txlock", "immediate")
	}
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	return u.String()
}

// Open opens (creating if needed) the database at path and applies pending
// migrations. It refuses a database written by a newer cvd.
func Open(ctx context.Context, path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("open database %s: %w", abs, err)
	}
	w := sql.OpenDB(&connector{dsn: dsn(abs, false)})
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	db := &DB{path: abs, write: w, writes: make(chan *writeReq), stopWriter: make(chan struct{}), writerDone: make(chan struct{})}
	go db.writer()
	if err := db.migrate(ctx); err != nil {
		db.stop()
		w.Close()
		return nil, err
	}
	// The database file exists now, as the read-only connections need.
	if err := os.Chmod(abs, 0o600); err != nil {
		db.stop()
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", abs, err)
	}
	r := sql.OpenDB(&connector{dsn: dsn(abs, true)})
	r.SetMaxOpenConns(8)
	db.read = r
	c, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", abs, err)
	}
	c.SetMaxOpenConns(1)
	db.checkpoint = c
	db.stopCheckpoint = make(chan struct{})
	db.checkpointDone = make(chan struct{})
	go db.checkpointLoop()
	return db, nil
}

// checkpointLoop copies committed pages from the write-ahead log into the
// database file every few seconds, without blocking writers (PASSIVE).
func (db *DB) checkpointLoop() {
	defer close(db.checkpointDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-db.stopCheckpoint:
			return
		case <-t.C:
			db.checkpoint.Exec("PRAGMA wal_checkpoint(PASSIVE)")
		}
	}
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Close closes all connections, after a last checkpoint. Closing again
// does nothing.
func (db *DB) Close() error {
	db.closeOnce.Do(func() { db.closeErr = db.close() })
	return db.closeErr
}

// stop ends the writer goroutine; Write fails with ErrClosed after it.
func (db *DB) stop() {
	close(db.stopWriter)
	<-db.writerDone
}

func (db *DB) close() error {
	var errs []error
	db.stop()
	if db.checkpoint != nil {
		close(db.stopCheckpoint)
		<-db.checkpointDone
		errs = append(errs, db.checkpoint.Close())
	}
	if db.read != nil {
		errs = append(errs, db.read.Close())
	}
	if _, err := db.write.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		errs = append(errs, fmt.Errorf("checkpoint %s: %w", db.path, err))
	}
	errs = append(errs, db.write.Close())
	return errors.Join(errs...)
}

// Write runs fn in one immediate (writing) transaction, committed when fn
// returns nil; when Write returns nil the changes are durable. Writes
// asked for at the same time share one commit (each in a savepoint of its
// own, so that one failing undoes only its own changes). fn must not call
// Write.
func (db *DB) Write(ctx context.Context, fn func(*sql.Tx) error) error {
	r := &writeReq{ctx: ctx, fn: fn, done: make(chan writeResult, 1)}
	select {
	case db.writes <- r:
	case <-ctx.Done():
		return fmt.Errorf("begin: %w", ctx.Err())
	case <-db.stopWriter:
		return fmt.Errorf("begin: %w", ErrClosed)
	}
	res := <-r.done
	if res.panicked != nil {
		panic(res.panicked)
	}
	return res.err
}

// Read runs fn in a read-only transaction on the reader pool.
func (db *DB) Read(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

func rollback(tx *sql.Tx) error {
	if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with its number", e.Name())
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{v, e.Name(), string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: expected number %d", m.name, i+1)
		}
	}
	return ms, nil
}

// SchemaVersion is the schema version this cvd writes.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil {
		panic(err)
	}
	return len(ms)
}

func (db *DB) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("database %s: %w", db.path, err)
	}
	return db.Write(ctx, func(tx *sql.Tx) error {
		var cur int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&cur); err != nil {
			return fmt.Errorf("database %s: read schema version: %w", db.path, err)
		}
		if cur > len(ms) {
			return fmt.Errorf("database %s has schema version %d, this cvd knows versions up to %d: run a newer cvd (or restore a backup made for this one): %w",
				db.path, cur, len(ms), ErrTooNew)
		}
		for _, m := range ms[cur:] {
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("database %s: migration %s: %w", db.path, m.name, err)
			}
		}
		if cur < len(ms) {
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(ms))); err != nil {
				return fmt.Errorf("database %s: set schema version: %w", db.path, err)
			}
		}
		return nil
	})
}
