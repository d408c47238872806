package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one part /healthz asks: Probe returns nil when the part works.
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
}

// HealthTimeout bounds each probe of /healthz.
const HealthTimeout = 5 * time.Second

// Handler serves /metrics from reg and /healthz from checks: 200 "ok" when
// every probe succeeds, 503 with one line per failed part otherwise.
func Handler(reg *prometheus.Registry, checks []Check, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogErrors{log}}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		failed := Health(r.Context(), checks)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if len(failed) == 0 {
			fmt.Fprintln(w, "ok")
			return
		}
		for _, f := range failed {
			log.Warn("health check failed", "detail", f)
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, strings.Join(failed, "\n"))
	})
	return mux
}

// Health runs every check at once and returns "NAME: reason" for each that
// failed or did not answer within HealthTimeout, in the checks' order.
func Health(ctx context.Context, checks []Check) []string {
	ctx, cancel := context.WithTimeout(ctx, HealthTimeout)
	defer cancel()
	res := make([]string, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan error, 1)
			go func() { done <- c.Probe(ctx) }()
			select {
			case err := <-done:
				if err != nil {
					res[i] = c.Name + ": " + err.Error()
				}
			case <-ctx.Done():
				res[i] = c.Name + ": no answer within " + HealthTimeout.String()
			}
		}()
	}
	wg.Wait()
	var failed []string
	for _, r := range res {
		if r != "" {
			failed = append(failed, r)
		}
	}
	return failed
}

type slogErrors struct{ log *slog.Logger }

func (l slogErrors) Println(v ...any) { l.log.Error("metrics", "err", fmt.Sprint(v...)) }
