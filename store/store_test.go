package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTemp(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "cvd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestPragmas(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	var mode string
	var sync, fk int
	if err := db.write.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := db.write.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if err := db.write.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || sync != 2 || fk != 1 {
		t.Errorf("journal_mode=%s synchronous=%d foreign_keys=%d; want wal, 2 (FULL), 1", mode, sync, fk)
	}
	var rfk int
	if err := db.Read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&rfk)
	}); err != nil || rfk != 1 {
		t.Errorf("reader foreign_keys=%d err=%v", rfk, err)
	}
	err := db.Read(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO spool_rcpt VALUES (1, 'x')")
		return err
	})
	if err == nil {
		t.Error("read pool accepted a write")
	}
}

func TestSpoolRoundTrip(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	raw := []byte("From: a@example.net\r\nSubject: \xff binary\r\n\r\nbody\r\n.leading dot\r\n\x00\r\n")
	env := Envelope{ReceivedAt: time.UnixMilli(1763766000123).UTC(), RemoteAddr: "127.0.0.1:1234", Helo: "client",
		MailFrom: "a@example.net", Rcpts: []string{"security@example.org", "security+x@example.org"}, TLS: true}
	id, err := db.Spool(ctx, env, raw)
	if err != nil {
		t.Fatal(err)
	}
	m, err := db.SpooledMessage(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Raw, raw) {
		t.Errorf("raw changed:\n%q\n%q", m.Raw, raw)
	}
	if !m.ReceivedAt.Equal(env.ReceivedAt) || m.MailFrom != env.MailFrom || !m.TLS || m.State != "new" ||
		strings.Join(m.Rcpts, ",") != "security+x@example.org,security@example.org" {
		t.Errorf("row = %+v", m)
	}
	if _, err := db.SpooledMessage(ctx, id+1); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing row: %v", err)
	}
	list, err := db.ListSpool(ctx, 10)
	if err != nil || len(list) != 1 || list[0].Size != int64(len(raw)) {
		t.Errorf("list = %+v, %v", list, err)
	}
}

func TestReopenKeepsDataAndRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cvd.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Spool(ctx, Envelope{ReceivedAt: time.Now()}, []byte("x")); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if _, err := db.SpooledMessage(ctx, 1); err != nil {
		t.Errorf("after reopen: %v", err)
	}
	if _, err := db.write.Exec("PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	_, err = Open(ctx, path)
	if !errors.Is(err, ErrTooNew) {
		t.Fatalf("newer database opened: %v", err)
	}
	for _, want := range []string{path, "999", "newer cvd"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestConcurrentWritersAndReaders(t *testing.T) {
	db := openTemp(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				id, err := db.Spool(ctx, Envelope{ReceivedAt: time.Now(), Rcpts: []string{"security@x"}}, []byte{byte(i)})
				if err != nil {
					errs <- err
					return
				}
				if _, err := db.SpooledMessage(ctx, id); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	list, _ := db.ListSpool(ctx, 1000)
	if len(list) != 200 {
		t.Errorf("%d rows, want 200", len(list))
	}
}

func TestCloseTwice(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "cvd.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
