package main

import (
	"bufio"
	"context"
	"database/sql"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/cvd-project/cvd/internal/cvdtest"
)

func healthz(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHealthz is an operator's monitor asking /healthz: ok while every
// part works; 503 naming SMTP while its listener turns clients away; 503
// naming the database while another process holds it locked; ok again
// once both are over.
func TestHealthz(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	addr := cvdtest.FreeAddr(t)
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), `# listen = "127.0.0.1:9425"`, `listen = "`+addr+`"`, 1)), 0o600)
	cvdtest.SetConfig(t, cfg, "max_connections", "2")
	cvdtest.SetConfig(t, cfg, "max_connections_per_ip", "2")
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	if code, body := healthz(t, addr); code != 200 || body != "ok\n" {
		t.Fatalf("healthy server: %d %q\n%s", code, body, s.logs())
	}

	// Two idle clients take every SMTP connection there is.
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "220 ") {
			t.Fatalf("greeting %q %v", line, err)
		}
		held = append(held, c)
	}
	code, body := healthz(t, addr)
	if code != 503 || !strings.Contains(body, "smtp: greeting \"421 4.7.0 too many connections") || strings.Contains(body, "database") {
		t.Errorf("SMTP full: %d %q", code, body)
	}
	for _, c := range held {
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for code != 200 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		code, body = healthz(t, addr)
	}
	if code != 200 {
		t.Fatalf("after the clients left: %d %q", code, body)
	}

	// Another process holds the database's write lock.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "cvd.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	code, body = healthz(t, addr)
	if code != 503 || !strings.HasPrefix(body, "database: ") || strings.Contains(body, "smtp") {
		t.Errorf("database locked: %d %q", code, body)
	}
	if _, err := conn.ExecContext(context.Background(), "COMMIT"); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	// The probe left waiting for the lock finishes; the next one passes.
	deadline = time.Now().Add(15 * time.Second)
	for code != 200 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		code, body = healthz(t, addr)
	}
	if code != 200 {
		t.Errorf("after the lock was released: %d %q", code, body)
	}
}
