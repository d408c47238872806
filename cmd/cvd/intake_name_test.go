package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/gpgtest"
	"github.com/cvd-project/cvd/store"
)

// withDB runs fn on cvd's database file in a write transaction, as a
// second SQLite connection (the server may be running).
func withDB(t *testing.T, dir string, fn func(tx *sql.Tx) error) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "cvd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Write(ctx, fn); err != nil {
		t.Fatal(err)
	}
}

// TestListNamedLikeIncidentID: a list named like the next incident ID
// stopped all intake ("create list 2026-004: already exists"). Such names
// are refused by "cvd list create"; a database that already has one (made
// before) keeps taking reports, the intake skipping the name; and a report
// the intake cannot take reaches the team, sealed, with the reason.
func TestListNamedLikeIncidentID(t *testing.T) {
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	w := newTrustWorld(t, cora)
	cora.Import(w.projectPub)
	year := time.Now().UTC().Year()
	next := fmt.Sprintf("%d-001", year)

	code, out, errOut := runCVD(t, w.dir, nil, "list", "create", fmt.Sprintf("%d-002", year), "--config", w.cfg)
	if code == 0 || !strings.Contains(errOut, "incident ID") {
		t.Errorf("list create with an incident ID's name: exit %d\n%s%s", code, out, errOut)
	}
	// An older cvd let the operator create it.
	withDB(t, w.dir, func(tx *sql.Tx) error {
		return store.CreateListTx(context.Background(), tx, &store.List{Name: next, Kind: store.ListIncident, CreatedAt: time.Now()})
	})

	w.start()
	id := w.report("rita@reporter.example", "rita@reporter.example",
		"From: Rita <rita@reporter.example>\r\nTo: security@example.org\r\nSubject: bug\r\nMessage-ID: <r1@reporter.example>\r\n\r\nFIRST-REPORT\r\n")
	if id == next {
		t.Errorf("the report was filed under the existing list %s", next)
	}
	if !anyContains(readable(cora, w.mail(cora.Email)), "FIRST-REPORT") {
		t.Errorf("the team did not get the report of %s", id)
	}

	// Any other failure to open an incident (here the database refuses
	// new incidents) reaches the team.
	withDB(t, w.dir, func(tx *sql.Tx) error {
		_, err := tx.Exec(`CREATE TRIGGER no_incident BEFORE INSERT ON incident BEGIN SELECT RAISE(ABORT, 'INCIDENT-TABLE-REFUSED'); END`)
		return err
	})
	before := len(w.mail(cora.Email))
	w.send("sam@reporter.example", "security@example.org",
		"From: Sam <sam@reporter.example>\r\nTo: security@example.org\r\nSubject: bug 2\r\nMessage-ID: <s1@reporter.example>\r\n\r\nSECOND-REPORT\r\n")
	var told string
	for _, p := range readable(cora, w.mail(cora.Email)[before:]) {
		if strings.Contains(p, "Report not taken") {
			told = p
		}
	}
	if told == "" {
		t.Fatalf("the team was not told of the report the intake could not take")
	}
	if !strings.Contains(told, "INCIDENT-TABLE-REFUSED") || !strings.Contains(told, "sam@reporter.example") {
		t.Errorf("the notice lacks the reason or the sender:\n%.1500s", told)
	}
	if raw := attachment(t, told); !strings.Contains(string(raw), "SECOND-REPORT") {
		t.Errorf("the attachment is not the report as received:\n%.500s", raw)
	}
	if _, spool, _ := runCVD(t, w.dir, nil, "spool", "list", "--config", w.cfg); !regexp.MustCompile(`sam@reporter\.example .*failed`).MatchString(spool) {
		t.Errorf("spool row of the report not taken:\n%s", spool)
	}
	w.s.stop(t)
}
