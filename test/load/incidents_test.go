package load

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/store"
)

// BenchmarkIncidentsUnderLoad runs CVD_LOAD_CLIENTS (20) go-smtp clients
// sending reports to security@, each from a sender of its own (intake
// limits off, every reporter acknowledged), flat out for
// CVD_LOAD_DURATION (20s), then leaves the intake idle for
// CVD_LOAD_IDLE (10s). It reports the intake rate (250s per second) and,
// beside it, the incidents opened and acknowledged (acknowledgement
// queued) per second while the clients ran, and per second after they
// stopped (the backlog routed by an idle intake: the reference).
// CVD_LOAD_RUNS (3) runs; the figures are medians.
//
//	CVD_LOAD=1 go test -run '^$' -bench IncidentsUnderLoad -benchtime 1x ./test/load
func BenchmarkIncidentsUnderLoad(b *testing.B) {
	skipUnlessLoad(b)
	dur := envDuration(b, "CVD_LOAD_DURATION", 20*time.Second)
	idle := envDuration(b, "CVD_LOAD_IDLE", 10*time.Second)
	clients := envInt(b, "CVD_LOAD_CLIENTS", 20)
	runs := envInt(b, "CVD_LOAD_RUNS", 3)
	var intake, loaded, idled []float64
	for range b.N {
		for run := range runs {
			i, l, d := incidentsRun(b, clients, dur, idle, run)
			intake, loaded, idled = append(intake, i), append(loaded, l), append(idled, d)
		}
	}
	b.ReportMetric(median(intake), "intake-msgs/s")
	b.ReportMetric(median(loaded), "incidents/s-under-load")
	b.ReportMetric(median(idled), "incidents/s-idle")
	b.Logf("median of %d runs: intake %.0f msgs/s; incidents opened and acknowledged %.1f/s under that load, %.1f/s with the intake idle (runs: %.1f / %.1f)",
		len(intake), median(intake), median(loaded), median(idled), loaded, idled)
}

func incidentsRun(b *testing.B, clients int, dur, idle time.Duration, run int) (intake, loaded, idled float64) {
	b.StopTimer()
	dir, cfg := newCVD(b, clients)
	cvdtest.SetConfig(b, cfg, "per_sender", "0")
	cvdtest.SetConfig(b, cfg, "per_network", "0")
	cvdtest.SetConfig(b, cfg, "acknowledge_unauthenticated", "true")
	s := cvdtest.Start(b, dir, nil, "--config", cfg)
	defer s.Stop(b)
	db, err := store.Open(context.Background(), filepath.Join(dir, "cvd.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var accepted atomic.Int64
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	body := strings.Repeat(strings.Repeat("r", 62)+"\r\n", 16)
	b.StartTimer()
	t0 := time.Now()
	stop := t0.Add(dur)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := smtp.Dial(s.Addr)
			if err != nil {
				mu.Lock()
				errs = append(errs, err.Error())
				mu.Unlock()
				return
			}
			defer cl.Close()
			for i := 0; time.Now().Before(stop); i++ {
				from := fmt.Sprintf("r%d.%d@reporter%d.example", c, i, c)
				msg := fmt.Sprintf("From: Reporter <%s>\r\nTo: security@%s\r\nSubject: finding %d.%d\r\nMessage-ID: <%d.%d.%d@reporter.example>\r\n\r\n%s",
					from, domain, c, i, run, c, i, body)
				if _, err := send(cl, from, "security@"+domain, msg); err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
					return
				}
				accepted.Add(1)
			}
			cl.Quit()
		}()
	}
	wg.Wait()
	loadEnd := time.Now()
	atEnd := acksQueued(b, db)
	time.Sleep(idle)
	idleEnd := time.Now()
	atIdle := acksQueued(b, db)
	routed, total := pendingLeft(b, db)
	b.StopTimer()
	if len(errs) > 0 {
		b.Errorf("%d clients stopped on an error, e.g. %s", len(errs), errs[0])
	}
	if routed >= total {
		b.Logf("run %d: the backlog was routed before the idle window ended: the idle rate is a lower bound", run)
	}
	loadSecs := loadEnd.Sub(t0).Seconds()
	intake = float64(accepted.Load()) / loadSecs
	loaded = float64(atEnd) / loadSecs
	idled = float64(atIdle-atEnd) / idleEnd.Sub(loadEnd).Seconds()
	b.Logf("run %d: %d clients for %s: %d reports got 250 (%.0f/s); %d incidents opened and acknowledged meanwhile (%.1f/s); then %.1f/s with the intake idle; %d of %d spooled reports routed",
		run, clients, dur, accepted.Load(), intake, atEnd, loaded, idled, routed, total)
	return intake, loaded, idled
}

// acksQueued counts the acknowledgements queued (each one an incident
// opened and its reporter acknowledged).
func acksQueued(b *testing.B, db *store.DB) int {
	var n int
	err := db.Read(context.Background(), func(tx *sql.Tx) error {
		return tx.QueryRow(`SELECT COUNT(*) FROM queue_msg WHERE kind = 'ack'`).Scan(&n)
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func pendingLeft(b *testing.B, db *store.DB) (routed, total int) {
	err := db.Read(context.Background(), func(tx *sql.Tx) error {
		return tx.QueryRow(`SELECT COALESCE(SUM(state != 'new'), 0), COUNT(*) FROM spool`).Scan(&routed, &total)
	})
	if err != nil {
		b.Fatal(err)
	}
	return routed, total
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
