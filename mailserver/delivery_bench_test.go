package mailserver

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/cvd-project/cvd/store"
)

// BenchmarkDeliver delivers 10,000 queued 4 KiB messages per iteration to
// a local sink: Postfix's smtp-sink when installed, else the go-smtp test
// sink. With smtp-source installed it also times smtp-source pushing the
// same count of the same size into the same sink and reports the ratio.
func BenchmarkDeliver(b *testing.B) {
	const total = 10000
	sinkAddr, sinkName := "", "smtp-sink"
	if _, err := exec.LookPath("smtp-sink"); err == nil {
		sinkAddr = startSmtpSink(b)
	} else {
		sinkAddr, sinkName = newTestSink(b, nil, false).Addr, "go-smtp"
	}
	body := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghi\r\n"), 32)
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		db := openQueueDB(b, dir)
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
		w := mustWorker(b, db, DeliveryOptions{Mode: ModeSmarthost, Smarthost: sinkAddr, SmarthostTLS: "none", PollInterval: time.Hour})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		t0 := time.Now()
		b.StartTimer()
		go func() { done <- w.Run(ctx) }()
		waitIdle(b, w, db)
		b.StopTimer()
		elapsed += time.Since(t0)
		cancel()
		<-done
		sent, _ := db.ListQueue(context.Background(), store.QueueFilter{States: []string{store.QueueSent}, Limit: total + 1})
		if len(sent) != total {
			b.Fatalf("%d of %d sent", len(sent), total)
		}
		db.Close()
		b.StartTimer()
	}
	perMsg := float64(elapsed.Nanoseconds()) / float64(b.N*total)
	b.ReportMetric(perMsg, "ns/msg")
	rate := 1e9 / perMsg
	b.ReportMetric(rate, "msgs/s")
	b.Logf("sink %s: %d messages in %v per run, %.0f msgs/s", sinkName, total, elapsed/time.Duration(b.N), rate)

	src, err := exec.LookPath("smtp-source")
	if err != nil || sinkName != "smtp-sink" {
		return
	}
	// Same count, size (-l is the body length), sessions as the worker's
	// default per-destination limit, connections kept (-d).
	t0 := time.Now()
	out, err := exec.Command(src, "-s", "4", "-d", "-m", fmt.Sprint(total), "-l", "4000", "-f", "a@example.org", "-t", "b@a.example", sinkAddr).CombinedOutput()
	if err != nil {
		b.Fatalf("smtp-source: %v\n%s", err, out)
	}
	srcRate := float64(total) / time.Since(t0).Seconds()
	b.ReportMetric(srcRate, "smtp-source-msgs/s")
	b.ReportMetric(rate/srcRate, "ratio")
	b.Logf("smtp-source: %.0f msgs/s; cvd/smtp-source = %.2f", srcRate, rate/srcRate)
}
