package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
	"github.com/cvd-project/cvd/store"
)

// TestLargeReportInPieces sends a 3 MiB report (spooled in pieces of 1
// MiB; its archive and queued copies share one body, stored in parts of
// 1 MiB): the coordinator decrypts all of it, the spool list shows its
// size, and a backup restored elsewhere holds it byte for byte with the
// body of its archive and queued copy.
func TestLargeReportInPieces(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	addTeam(t, dir, cfg, cora)
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)

	core := make([]byte, 3<<20)
	rand.Read(core)
	enc := base64.StdEncoding.EncodeToString(core)
	var body strings.Builder
	for len(enc) > 76 {
		body.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	body.WriteString(enc + "\r\n")
	msg := "From: Rita <rita@reporter.example>\r\nTo: security@example.org\r\nSubject: big core dump\r\nMessage-ID: <big@reporter.example>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nThe crash dump is attached.\r\n" +
		"--b1\r\nContent-Type: application/octet-stream; name=\"core\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body.String() +
		"--b1\r\nContent-Type: text/plain\r\n\r\nLast part: reproduced on 1.2.3.\r\n--b1--\r\n"
	file := filepath.Join(t.TempDir(), "big.eml")
	if err := os.WriteFile(file, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := swaks(t, "--server", s.addr, "--from", "rita@reporter.example", "--to", "security@example.org", "--data", "@"+file); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}

	got := waitOutboxTo(t, dir, "cora@example.org", s.logs)
	plain, _, err := cora.Decrypt(got.Raw)
	if err != nil {
		t.Fatalf("coordinator's copy: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(body.String()), "\r\n")
	for _, want := range []string{"The crash dump is attached.", lines[0], lines[len(lines)/2], lines[len(lines)-1], "Last part: reproduced on 1.2.3."} {
		if !strings.Contains(strings.ReplaceAll(plain, "\r\n", "\n"), want) {
			t.Fatalf("coordinator's copy lacks %q (%d bytes decrypted)", want, len(plain))
		}
	}
	s.stop(t)
	ctx := context.Background()
	spooled := func(path string) []byte {
		t.Helper()
		db, err := store.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		m, err := db.SpooledMessage(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		return m.Raw
	}
	// swaks ends the data with a line of its own.
	received := spooled(filepath.Join(dir, "cvd.db"))
	if !strings.HasPrefix(string(received), msg) || len(received) > len(msg)+2 {
		t.Fatalf("spooled %d bytes, not the %d sent", len(received), len(msg))
	}
	list := cvdtest.MustRun(t, dir, nil, "spool", "list", "--config", cfg)
	if !strings.Contains(list, "security@example.org") || !strings.Contains(list, " "+strconv.Itoa(len(received))+" ") {
		t.Errorf("spool list does not show the %d-byte report:\n%s", len(received), list)
	}

	backup := filepath.Join(t.TempDir(), "cvd-backup.tar.gz")
	cvdtest.MustRun(t, dir, nil, "backup", backup, "--config", cfg)
	restored := filepath.Join(t.TempDir(), "restored")
	cvdtest.MustRun(t, t.TempDir(), nil, "restore", backup, "--dir", restored)
	if back := spooled(filepath.Join(restored, "cvd.db")); string(back) != string(received) {
		t.Errorf("restored spool holds %d bytes, not the %d received", len(back), len(received))
	}
	db, err := store.Open(ctx, filepath.Join(restored, "cvd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, table := range []string{"spool_chunk", "shared_body_part"} {
		var n int
		if err := db.Read(ctx, func(tx *sql.Tx) error { return tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n) }); err != nil {
			t.Fatal(err)
		}
		if n < 3 {
			t.Errorf("restored %s has %d pieces, want at least 3", table, n)
		}
	}
}
