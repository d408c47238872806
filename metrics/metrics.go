// Package metrics holds cvd's Prometheus counters, the gauges read from the
// database at scrape time, and the HTTP endpoint that serves both with a
// health check. The parts of cvd increment the counters where they decide
// an outcome; only this package knows about HTTP and the registry.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Reasons for refusing mail over SMTP, the values of the "reason" label.
const (
	RefusedBadAddress      = "bad_address"
	RefusedUnknownRcpt     = "unknown_recipient"
	RefusedRelay           = "relay_denied"
	RefusedTooBig          = "too_big"
	RefusedLineTooLong     = "line_too_long"
	RefusedTransfer        = "transfer_interrupted"
	RefusedLocalError      = "local_error"
	RefusedTooManyConns    = "too_many_connections"
	RefusedTooManyFromAddr = "too_many_connections_from_address"
)

var (
	// Received counts messages accepted over SMTP (answered 250 after DATA).
	Received = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cvd_smtp_received_total",
		Help: "Messages accepted over SMTP (stored in the spool before the 250 reply).",
	})
	// Refused counts SMTP refusals (a command, a message or a connection)
	// by reason.
	Refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cvd_smtp_refused_total",
		Help: "SMTP refusals of a sender, recipient, message or connection, by reason.",
	}, []string{"reason"})
	// Deliveries counts outbound delivery attempts per recipient by result:
	// sent, deferred or failed.
	Deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cvd_deliveries_total",
		Help: "Outbound delivery attempts per recipient, by result (sent, deferred, failed).",
	}, []string{"result"})
	// Bounces counts bounce reports received on return paths by result:
	// permanent, transient, unknown_token, not_a_bounce, unreadable.
	Bounces = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cvd_bounces_total",
		Help: "Delivery status notifications received on return paths, by result.",
	}, []string{"result"})
)

// State is what the database says at one moment; Source reads it for each
// scrape.
type State struct {
	// Spool, Queue and Incidents count rows by state.
	Spool     map[string]int
	Queue     map[string]int
	Incidents map[string]int
	// NextDeadline is the scheduler's next due time (zero: none).
	NextDeadline time.Time
	// ReleaseLag is how late the last release went out after its public
	// date; HasRelease says whether there was one.
	ReleaseLag time.Duration
	HasRelease bool
}

// Source reads the current State.
type Source func(ctx context.Context) (State, error)

var (
	descSpool     = prometheus.NewDesc("cvd_spool_messages", "Received messages in the spool, by state.", []string{"state"}, nil)
	descQueue     = prometheus.NewDesc("cvd_queue_recipients", "Outbound queue rows (one per recipient), by state.", []string{"state"}, nil)
	descIncidents = prometheus.NewDesc("cvd_incidents", "Incidents, by state.", []string{"state"}, nil)
	descDeadline  = prometheus.NewDesc("cvd_next_deadline_timestamp_seconds", "When the scheduler has something due next (release, reminder, escalation); 0 when nothing is.", nil, nil)
	descLag       = prometheus.NewDesc("cvd_release_lag_seconds", "How long after its public date the last release went out.", nil, nil)
	descUp        = prometheus.NewDesc("cvd_database_up", "1 when the database answered this scrape, 0 otherwise.", nil, nil)
)

// The states always reported, so that a graph shows 0 rather than nothing.
var (
	spoolStates    = []string{"new", "done", "failed"}
	queueStates    = []string{"queued", "sending", "sent", "deferred", "failed"}
	incidentStates = []string{"new", "triage", "confirmed", "rejected", "duplicate", "fixing", "prenotified", "published", "closed"}
)

type dbCollector struct {
	source  Source
	timeout time.Duration
}

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSpool, descQueue, descIncidents, descDeadline, descLag, descUp} {
		ch <- d
	}
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	s, err := c.source(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	byState := func(d *prometheus.Desc, known []string, m map[string]int) {
		for _, st := range known {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(m[st]), st)
		}
		for st, n := range m {
			if !contains(known, st) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n), st)
			}
		}
	}
	byState(descSpool, spoolStates, s.Spool)
	byState(descQueue, queueStates, s.Queue)
	byState(descIncidents, incidentStates, s.Incidents)
	var next float64
	if !s.NextDeadline.IsZero() {
		next = float64(s.NextDeadline.UnixMilli()) / 1000
	}
	ch <- prometheus.MustNewConstMetric(descDeadline, prometheus.GaugeValue, next)
	if s.HasRelease {
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, s.ReleaseLag.Seconds())
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// NewRegistry returns a registry with cvd's counters, the database gauges
// read from source at each scrape, and the Go runtime and process metrics.
func NewRegistry(source Source) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(Received, Refused, Deliveries, Bounces,
		&dbCollector{source: source, timeout: 5 * time.Second},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}
