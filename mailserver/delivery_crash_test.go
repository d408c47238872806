package mailserver

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/store"
)

const crashWindow = 64

// TestDeliveryCrashHelper is the delivering process of TestDeliveryCrash:
// it runs only when re-executed with CVD_CRASH_DB set.
func TestDeliveryCrashHelper(t *testing.T) {
	path, sinkAddr := os.Getenv("CVD_CRASH_DB"), os.Getenv("CVD_CRASH_SINK")
	if path == "" {
		t.Skip("helper process only")
	}
	db, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewDeliveryWorker(storeQueue{db}, DeliveryOptions{
		Mode: ModeSmarthost, Smarthost: sinkAddr, SmarthostTLS: "none",
		Domain: "example.org", Hostname: "mail.example.org", Window: crashWindow, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	for {
		time.Sleep(20 * time.Millisecond)
		left, err := db.ListQueue(ctx, store.QueueFilter{States: []string{store.QueueQueued, store.QueueSending, store.QueueDeferred}, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	db.Close()
}

var messageIDRE = regexp.MustCompile(`Message-ID: <(m\d+)@example.org>`)

// TestDeliveryCrash kills the delivering process (SIGKILL) part-way
// through 1,000 messages and restarts it: every message must reach the
// sink, and duplicates are bounded by the in-flight window.
func TestDeliveryCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	const total = 1000
	sink := newTestSink(t, nil, false)
	dir := t.TempDir()
	path := filepath.Join(dir, "cvd.db")
	db := openQueueDB(t, dir)
	err := db.Write(context.Background(), func(tx *sql.Tx) error {
		for i := range total {
			id := "m" + strconv.Itoa(i)
			if _, err := store.EnqueueTx(context.Background(), tx, &store.OutMessage{Rcpts: []string{"ok@a.example"}, Raw: queuedMessage(id)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	helper := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDeliveryCrashHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), "CVD_CRASH_DB="+path, "CVD_CRASH_SINK="+sink.Addr)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("helper output:\n%s", out.String())
			}
		})
		return cmd
	}

	first := helper()
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(sink.Txns()) < total/3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	atKill := len(sink.Txns())
	if atKill >= total {
		t.Fatalf("all %d messages were out before the kill; the test proves nothing", atKill)
	}
	var sending int
	db.Read(context.Background(), func(tx *sql.Tx) error {
		return tx.QueryRow(`SELECT count(*) FROM queue WHERE state = 'sending'`).Scan(&sending)
	})

	second := helper()
	if err := second.Run(); err != nil {
		t.Fatalf("restarted helper: %v", err)
	}

	count := map[string]int{}
	for _, tx := range sink.Txns() {
		m := messageIDRE.FindSubmatch(tx.Data)
		if m == nil {
			t.Fatalf("message without our Message-ID: %q", tx.Data)
		}
		count[string(m[1])]++
	}
	dups := 0
	for i := range total {
		n := count["m"+strconv.Itoa(i)]
		if n == 0 {
			t.Errorf("message m%d lost", i)
		}
		dups += max(n-1, 0)
	}
	if dups > crashWindow {
		t.Errorf("%d duplicates, more than the in-flight window %d", dups, crashWindow)
	}
	all, _ := db.ListQueue(context.Background(), store.QueueFilter{Limit: 2 * total})
	for _, e := range all {
		if e.State != store.QueueSent {
			t.Errorf("row %d is %s", e.ID, e.State)
		}
	}
	t.Logf("killed after %d deliveries with %d rows in sending; after restart %d distinct messages, %d duplicates (window %d)",
		atKill, sending, len(count), dups, crashWindow)
}

// startSmtpSink runs Postfix's smtp-sink on a loopback port with extra
// arguments, or skips the test when it is not installed.
func startSmtpSink(t testing.TB, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("smtp-sink")
	if err != nil {
		for _, p := range []string{"/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"} {
			if _, err := os.Stat(p); err == nil {
				bin = p
			}
		}
	}
	if bin == "" {
		cvdtest.SkipOrFail(t, "smtp-sink (Debian package postfix) not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...)
	}
	args = append(args, addr, "256")
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(60 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("smtp-sink did not start in 60s: %v\n%s", err, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDeliveryPostfixSmtpSink(t *testing.T) {
	for _, c := range []struct {
		name  string
		args  []string
		state string
		reply string
	}{
		{"accept", nil, store.QueueSent, "250"},
		{"hard RCPT", []string{"-f", "RCPT"}, store.QueueFailed, "500 5.3.0"},
		{"soft end of data", []string{"-r", "."}, store.QueueDeferred, "450 4.3.0"},
		{"disconnect at DATA", []string{"-q", "DATA"}, store.QueueDeferred, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := startSmtpSink(t, c.args...)
			db := openQueueDB(t, t.TempDir())
			clock := &fakeClock{t: start}
			w := mustWorker(t, db, DeliveryOptions{Mode: ModeSmarthost, Smarthost: addr, SmarthostTLS: "none", Now: clock.Now, PollInterval: time.Hour})
			for i := range 10 {
				enqueue(t, db, start, fmt.Sprint("m", i), sprintRcpts("u", 3, "a.example")...)
			}
			runWorker(t, w)
			waitIdle(t, w, db)
			es, _ := db.ListQueue(context.Background(), store.QueueFilter{})
			if len(es) != 30 {
				t.Fatalf("%d rows", len(es))
			}
			for _, e := range es {
				if e.State != c.state || !bytes.Contains([]byte(e.LastReply), []byte(c.reply)) {
					t.Errorf("%s: %s %q; want %s with %q", e.Rcpt, e.State, e.LastReply, c.state, c.reply)
				}
			}
		})
	}
}
