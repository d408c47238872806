package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHealthReportsEachFailedPart: one line per part that failed, in the
// checks' order, and 503; 200 "ok" when all pass.
func TestHealthReportsEachFailedPart(t *testing.T) {
	ok := func(context.Context) error { return nil }
	bad := func(msg string) func(context.Context) error {
		return func(context.Context) error { return errors.New(msg) }
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	get := func(checks []Check) (int, string) {
		h := Handler(NewRegistry(func(context.Context) (State, error) { return State{}, nil }), checks, log)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
		return w.Code, w.Body.String()
	}
	if code, body := get([]Check{{"database", ok}, {"smtp", ok}}); code != 200 || body != "ok\n" {
		t.Errorf("all well: %d %q", code, body)
	}
	code, body := get([]Check{{"database", bad("write: locked")}, {"smtp", ok}, {"imap", bad("connect: refused")}})
	if code != 503 || body != "database: write: locked\nimap: connect: refused\n" {
		t.Errorf("two failed: %d %q", code, body)
	}
}

// TestScrapeWithoutDatabase: the counters are served when the database
// cannot be read, and cvd_database_up says so.
func TestScrapeWithoutDatabase(t *testing.T) {
	h := Handler(NewRegistry(func(context.Context) (State, error) { return State{}, errors.New("disk gone") }), nil,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	body := w.Body.String()
	if w.Code != 200 || !strings.Contains(body, "cvd_database_up 0") || strings.Contains(body, "cvd_incidents{") {
		t.Errorf("scrape without a database: %d\n%s", w.Code, body)
	}
}
