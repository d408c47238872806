package mailserver

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os/exec"
	"sort"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cvd-project/cvd/store"
)

// countingQueue counts the rows recorded as sent, so a benchmark sees the
// end of a run without polling the database.
type countingQueue struct {
	OutboundQueue
	want    int64
	sent    atomic.Int64
	records atomic.Int64
	claims  atomic.Int64
	done    chan struct{}
}

func (q *countingQueue) Claim(ctx context.Context, now time.Time, limit int, maxBytes int64, skip []string) ([]OutboundBatch, error) {
	q.claims.Add(1)
	return q.OutboundQueue.Claim(ctx, now, limit, maxBytes, skip)
}

func (q *countingQueue) Record(ctx context.Context, now time.Time, rs []DeliveryResult) error {
	err := q.OutboundQueue.Record(ctx, now, rs)
	if err != nil {
		return err
	}
	q.records.Add(1)
	n := int64(0)
	for _, r := range rs {
		if r.State == StateSent {
			n++
		}
	}
	if q.sent.Add(n) == q.want && n > 0 {
		close(q.done)
	}
	return nil
}

// BenchmarkDeliver delivers 10,000 queued 4 KiB messages (one recipient
// each) per iteration to Postfix's smtp-sink, without and with DKIM
// signing (RSA and Ed25519), and in the same iteration times Postfix's
// smtp-source pushing the same count of the same size into the same sink
// with as many sessions as the worker opens, before and after the worker
// (their mean is the reference). It prints both rates and
// their ratio, and the medians over the iterations, and beside them the
// CPU time per message of cvd's process and of smtp-source, which other
// work on the machine changes less than the rates.
func BenchmarkDeliver(b *testing.B) {
	for _, signed := range []bool{false, true} {
		name := "dkim=off"
		if signed {
			name = "dkim=on"
		}
		b.Run(name, func(b *testing.B) { benchDeliver(b, signed) })
	}
}

func benchDeliver(b *testing.B, signed bool) {
	const total = 10000
	src, err := exec.LookPath("smtp-source")
	if err != nil {
		b.Skip("smtp-source (Debian package postfix) not installed")
	}
	sinkAddr := startSmtpSink(b)
	var dkim *DKIMSigner
	if signed {
		dkim, _ = testDKIMSigner(b)
	}
	body := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghi\r\n"), 32)
	var rates, refs, ratios, cpus, refCPUs []float64
	for b.Loop() {
		b.StopTimer()
		db := openQueueDB(b, b.TempDir())
		err := db.Write(context.Background(), func(tx *sql.Tx) error {
			for i := range total {
				raw := append(queuedMessage(fmt.Sprint("m", i)), body[:4096-100]...)
				if _, err := store.EnqueueTx(context.Background(), tx, &store.OutMessage{Rcpts: []string{fmt.Sprintf("u%d@a.example", i)}, Raw: raw}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		q := &countingQueue{OutboundQueue: storeQueue{db}, want: total, done: make(chan struct{})}
		w, err := NewDeliveryWorker(q, DeliveryOptions{
			Mode: ModeSmarthost, Smarthost: sinkAddr, SmarthostTLS: "none", PollInterval: time.Hour,
			Domain: "example.org", Hostname: "mail.example.org", Logger: quietLogger(), DKIM: dkim,
		})
		if err != nil {
			b.Fatal(err)
		}
		// The reference runs before and after, against the machine's drift.
		sessions := w.opts.PerDestination
		refBefore, refCPUBefore := source(b, src, sinkAddr, total, sessions)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		cpu0 := processCPU(b)
		t0 := time.Now()
		go func() { done <- w.Run(ctx) }()
		select {
		case <-q.done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("%d of %d sent after 5 minutes", q.sent.Load(), total)
		}
		elapsed := time.Since(t0)
		cpu := processCPU(b) - cpu0
		b.StopTimer()
		cancel()
		<-done
		sent, _ := db.ListQueue(context.Background(), store.QueueFilter{States: []string{store.QueueSent}, Limit: total + 1})
		if len(sent) != total {
			b.Fatalf("%d of %d sent", len(sent), total)
		}
		db.Close()

		refAfter, refCPUAfter := source(b, src, sinkAddr, total, sessions)
		ref := 2 * float64(total) / (refBefore + refAfter).Seconds()
		rate := float64(total) / elapsed.Seconds()
		perMsg := func(d time.Duration) float64 { return float64(d.Microseconds()) / total }
		rates, refs, ratios = append(rates, rate), append(refs, ref), append(ratios, rate/ref)
		cpus, refCPUs = append(cpus, perMsg(cpu)), append(refCPUs, perMsg((refCPUBefore+refCPUAfter)/2))
		b.Logf("cvd %.0f msgs/s (%d claims, %d records), smtp-source %.0f msgs/s (%d sessions): ratio %.2f; CPU %.1f µs/msg, smtp-source %.1f µs/msg",
			rate, q.claims.Load(), q.records.Load(), ref, sessions, rate/ref, cpus[len(cpus)-1], refCPUs[len(refCPUs)-1])
		b.StartTimer()
	}
	b.ReportMetric(median(rates), "msgs/s")
	b.ReportMetric(median(refs), "smtp-source-msgs/s")
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(median(cpus), "cpu-µs/msg")
	b.ReportMetric(median(refCPUs), "smtp-source-cpu-µs/msg")
}

// source runs smtp-source into sink with total messages of 4 KiB (-l is
// the body length) over sessions connections kept open (-d), and returns
// its time and the CPU time it used.
func source(b *testing.B, src, sink string, total, sessions int) (elapsed, cpu time.Duration) {
	t0 := time.Now()
	cmd := exec.Command(src, "-s", fmt.Sprint(sessions), "-d", "-m", fmt.Sprint(total), "-l", "4000", "-f", "a@example.org", "-t", "b@a.example", sink)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("smtp-source: %v\n%s", err, out)
	}
	return time.Since(t0), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// processCPU is the CPU time this process has used (user and system).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
