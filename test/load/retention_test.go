package load

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/store"
)

// BenchmarkRetentionGrowth measures how much the database grows per
// incident (a 1 KiB report, its acknowledgement and the copies to a team
// of two) and per announcement to CVD_LOAD_SUBSCRIBERS subscribers
// (10,000), before and after 'cvd retention run --vacuum' (default
// [retention]: 30 days; run on a clock 31 days ahead). CVD_LOAD_INCIDENTS
// (50) sets the incidents measured. Bytes are those of a compacted copy
// of the database (VACUUM INTO), before and after alike.
func BenchmarkRetentionGrowth(b *testing.B) {
	skipUnlessLoad(b)
	subscribers := envInt(b, "CVD_LOAD_SUBSCRIBERS", 10000)
	incidents := envInt(b, "CVD_LOAD_INCIDENTS", 50)
	later := []string{"CVD_CLOCK_OFFSET=744h"}
	for range b.N {
		sink := startSink(b)
		dir, cfg := newCVD(b, 20)
		cvdtest.SetConfig(b, cfg, "mode", `"smarthost"`)
		cvdtest.SetConfig(b, cfg, "smarthost", strconv.Quote(sink))
		cvdtest.SetConfig(b, cfg, "tls", `"none"`)
		cvdtest.SetConfig(b, cfg, "project", `"libload"`)
		for _, name := range []string{"cora", "finn"} {
			_, pub, err := crypto.GenerateKey(name, name+"@"+domain, crypto.KindCurve25519)
			if err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "keys", name+".asc"), pub, 0o600); err != nil {
				b.Fatal(err)
			}
			cvdtest.AppendConfig(b, cfg, "\n[[embargo.team]]\nname = \""+name+"\"\nemail = \""+name+"@"+domain+"\"\nkey_file = \"keys/"+name+".asc\"\n")
		}
		subscribe(b, dir, subscribers)
		cli := func(env []string, args ...string) string {
			return cvdtest.MustRun(b, dir, env, append(args, "--config", cfg)...)
		}
		s0 := space(b, dir)

		// Incidents: reported, acknowledged, fanned out, rejected, closed.
		s := cvdtest.Start(b, dir, nil, "--config", cfg)
		for i := range incidents {
			c, err := smtp.Dial(s.Addr)
			if err != nil {
				b.Fatal(err)
			}
			from := fmt.Sprintf("r%d@reporter.example", i)
			if err := c.SendMail(from, []string{"security@" + domain}, strings.NewReader(strings.Replace(report(fmt.Sprintf("g%d@reporter.example", i)), "rita@", from[:strings.Index(from, "@")+1], 1))); err != nil {
				b.Fatal(err)
			}
			c.Quit()
		}
		ids := waitIncidents(b, dir, incidents)
		waitQuiet(b, dir)
		s.Stop(b)
		for _, id := range ids {
			cli(nil, "incident", "reject", id, "not a flaw")
			cli(nil, "incident", "close", id)
		}
		s1 := space(b, dir)
		b.Logf("incidents: %s", cli(later, "retention", "run", "--vacuum"))
		s1p := space(b, dir)

		// One announcement to every subscriber.
		s = cvdtest.Start(b, dir, nil, "--config", cfg)
		c, err := smtp.Dial(s.Addr)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.SendMail("rita@reporter.example", []string{"security@" + domain}, strings.NewReader(report("release@reporter.example"))); err != nil {
			b.Fatal(err)
		}
		c.Quit()
		id := waitIncidents(b, dir, incidents+1)[incidents]
		s.Stop(b)
		cli(nil, "incident", "confirm", id, "--privacy", "public")
		cli(nil, "incident", "set", id, "title", "Load test advisory")
		cli(nil, "incident", "set", id, "description", "A flaw found while measuring retention.")
		cli(nil, "incident", "versions", id, "libload", "--introduced", "1.0", "--fixed", "1.0.1")
		s2a := space(b, dir)
		s = cvdtest.Start(b, dir, nil, "--config", cfg)
		cli(nil, "incident", "publish", id)
		waitAnnounced(b, dir, subscribers, 20*time.Minute)
		s.Stop(b)
		cli(nil, "incident", "close", id)
		s2 := space(b, dir)
		b.Logf("announcement: %s", cli(later, "retention", "run", "--vacuum"))
		s2p := space(b, dir)

		perIncident, perIncidentAfter := float64(s1-s0)/float64(incidents), float64(s1p-s0)/float64(incidents)
		b.ReportMetric(perIncident, "B/incident")
		b.ReportMetric(perIncidentAfter, "B/incident-after-retention")
		b.ReportMetric(float64(s2-s2a), "B/announcement")
		b.ReportMetric(float64(s2p-s2a), "B/announcement-after-retention")
		b.Logf("database growth: %.0f bytes per incident before retention, %.0f after (%d incidents); "+
			"%d bytes per announcement to %d subscribers before retention, %d after (%.0f and %.1f per subscriber)",
			perIncident, perIncidentAfter, incidents, s2-s2a, subscribers, s2p-s2a,
			float64(s2-s2a)/float64(subscribers), float64(s2p-s2a)/float64(subscribers))
	}
}

// space returns the size of a compacted copy of the database (VACUUM
// INTO), so that every figure counts the data alone.
func space(b *testing.B, dir string) int64 {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "cvd.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	copy := filepath.Join(b.TempDir(), "compact.db")
	if err := db.Snapshot(ctx, copy); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(copy)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

// waitIncidents waits until n incidents exist and returns their IDs in order.
func waitIncidents(b *testing.B, dir string, n int) []string {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "cvd.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var ids []string
		err := db.Read(ctx, func(tx *sql.Tx) error {
			rows, err := tx.Query(`SELECT id FROM incident ORDER BY id`)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					return err
				}
				ids = append(ids, id)
			}
			return rows.Err()
		})
		if err != nil {
			b.Fatal(err)
		}
		if len(ids) >= n {
			return ids
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d incidents opened, want %d", len(ids), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitQuiet waits until everything spooled is routed and nothing is
// queued.
func waitQuiet(b *testing.B, dir string) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "cvd.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var n int
		err := db.Read(ctx, func(tx *sql.Tx) error {
			return tx.QueryRow(`SELECT (SELECT COUNT(*) FROM spool WHERE state = 'new') + (SELECT COUNT(*) FROM queue WHERE state IN ('queued', 'sending', 'deferred'))`).Scan(&n)
		})
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d messages still to route or deliver", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
