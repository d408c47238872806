package embargo_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/publish"
	"github.com/cvd-project/cvd/store"
)

// BenchmarkRouteFlood routes b.N spooled reports from one sender with a
// coordinator on the team: "open" with no intake policy (every report
// opens an incident, posts to its list and is acknowledged), "triage"
// with the default policy (all but the first 3 wait in triage). One op is
// one report routed. Profile with
//
//	go test -run '^$' -bench RouteFlood -cpuprofile cpu.out ./embargo && go tool pprof -top embargo.test cpu.out
func BenchmarkRouteFlood(b *testing.B) {
	for _, bc := range []struct {
		name   string
		policy embargo.IntakePolicy
	}{{"open", embargo.IntakePolicy{}}, {"triage", embargo.DefaultIntakePolicy()}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			priv, _, err := crypto.GenerateKey("example.org security team", "security@"+domain, crypto.KindCurve25519)
			if err != nil {
				b.Fatal(err)
			}
			key, _ := crypto.ParseKey(priv)
			_, coraPub, err := crypto.GenerateKey("Cora", "cora@"+domain, crypto.KindCurve25519)
			if err != nil {
				b.Fatal(err)
			}
			db, err := store.Open(ctx, filepath.Join(b.TempDir(), "cvd.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			svc := &lists.Service{DB: db, Domain: domain, Key: key, Log: log}
			desk := &embargo.Desk{DB: db, Lists: svc, Domain: domain, Key: key, Policy: embargo.DefaultPolicy(),
				Team:    []embargo.Person{{Name: "Cora", Email: "cora@" + domain, Key: coraPub}},
				Project: publish.Project{Name: "libexample", Domain: domain}, Log: log, IntakePolicy: bc.policy}
			svc.Keywords = desk.HandleKeyword
			router := &embargo.Router{DB: db, Domain: domain, Lists: svc, Intake: desk.Intake, Log: log, AfterBatch: desk.FlushTriage}
			desk.DeferTriage = true
			now := time.Now()
			for i := range b.N {
				raw := fmt.Sprintf("From: <flood@flood.example>\r\nTo: security@%s\r\nSubject: flood %d\r\nMessage-ID: <%d@flood.example>\r\n\r\nreport %d\r\n", domain, i, i, i)
				if _, err := db.Spool(ctx, store.Envelope{ReceivedAt: now, RemoteAddr: "127.0.0.1:1", Helo: "x", MailFrom: "flood@flood.example",
					Rcpts: []string{"security@" + domain}}, []byte(raw)); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			var cursor int64
			for routed := 0; routed < b.N; {
				n, last, err := router.RouteOnce(ctx, cursor)
				if err != nil {
					b.Fatal(err)
				}
				if n == 0 {
					b.Fatalf("%d of %d routed", routed, b.N)
				}
				routed += n
				cursor = last
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
		})
	}
}
