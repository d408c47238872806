// Package load measures the built cvd binary (default configuration,
// without the race detector) on this machine:
//
//   - BenchmarkIntake: 20 concurrent SMTP clients (go-smtp) send reports to
//     security@ for 30 s; messages/s durably accepted (250 received), the
//     p50/p99 latency from the end of DATA to the 250, and cvd's peak RSS.
//   - BenchmarkIntakeSmtpSource: Postfix's smtp-source (20 sessions) into
//     cvd, and, as the reference, the same smtp-source into a private
//     Postfix instance's own queue (messages put on hold, so each is
//     queued durably and nothing is delivered); and into smtp-sink, which
//     stores nothing, for the ceiling of the client.
//   - BenchmarkRelease: an incident pre-notified for a date three days
//     ahead; cvd restarted with its clock (CVD_CLOCK_OFFSET) 3 s before
//     the date; the time from the date to the last of 10,000 announce-list
//     subscribers' copies accepted by smtp-sink (delivery mode smarthost,
//     tls "none", 127.0.0.1).
//
// They run only with CVD_LOAD=1:
//
//	CVD_LOAD=1 go test -run '^$' -bench . -benchtime 1x ./test/load
//
// CVD_LOAD_DURATION (default 30s), CVD_LOAD_CLIENTS (20),
// CVD_LOAD_MESSAGES (smtp-source messages per run, 10000) and
// CVD_LOAD_SUBSCRIBERS (10000) shorten or lengthen a run.
package load

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/store"
)

func TestMain(m *testing.M) {
	if os.Getenv("CVD_LOAD") == "" {
		os.Exit(m.Run()) // every benchmark skips; nothing to build
	}
	cvdtest.Main(m, false)
}

func skipUnlessLoad(b *testing.B) {
	if os.Getenv("CVD_LOAD") == "" {
		b.Skip("load benchmarks run with CVD_LOAD=1")
	}
}

func envInt(b *testing.B, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("%s=%q: want a positive number", name, v)
		}
		return n
	}
	return def
}

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("%s=%q: want a duration such as 30s", name, v)
		}
		return d
	}
	return def
}

const domain = "example.org"

// report is a 1 KiB report, the payload size smtp-source sends with -l 1024.
func report(id string) string {
	return "From: Rita <rita@reporter.example>\r\nTo: security@" + domain + "\r\nSubject: load\r\nMessage-ID: <" + id + ">\r\n\r\n" +
		strings.Repeat(strings.Repeat("r", 62)+"\r\n", 16)
}

// newCVD initialises an installation with the default configuration (the
// connection limit per address raised above the client count).
func newCVD(b *testing.B, clients int) (dir, cfg string) {
	dir, cfg = cvdtest.InitDir(b, domain)
	cvdtest.SetConfig(b, cfg, "max_connections_per_ip", strconv.Itoa(clients+10))
	return dir, cfg
}

func BenchmarkIntake(b *testing.B) {
	skipUnlessLoad(b)
	dur := envDuration(b, "CVD_LOAD_DURATION", 30*time.Second)
	clients := envInt(b, "CVD_LOAD_CLIENTS", 20)
	for range b.N {
		dir, cfg := newCVD(b, clients)
		s := cvdtest.Start(b, dir, nil, "--config", cfg)
		var mu sync.Mutex
		var lat []time.Duration
		var errs []string
		stop := time.Now().Add(dur)
		var wg sync.WaitGroup
		b.ResetTimer()
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
				var mine []time.Duration
				for i := 0; time.Now().Before(stop); i++ {
					d, err := send(cl, "rita@reporter.example", "security@"+domain, report(fmt.Sprintf("%d.%d@load.example", c, i)))
					if err != nil {
						mu.Lock()
						errs = append(errs, err.Error())
						mu.Unlock()
						return
					}
					mine = append(mine, d)
				}
				cl.Quit()
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		b.StopTimer()
		rss, rssErr := s.PeakRSS()
		// Mail still being routed (incidents opened, acknowledgements
		// queued) when the clients stopped.
		routed, total := spoolProgress(b, dir)
		s.Stop(b)
		if len(errs) > 0 {
			b.Errorf("%d clients stopped on an error, e.g. %s", len(errs), errs[0])
		}
		if rssErr != nil {
			b.Error(rssErr)
		}
		if total < len(lat) {
			b.Errorf("%d messages got 250 but the spool holds %d", len(lat), total)
		}
		slices.Sort(lat)
		rate := float64(len(lat)) / dur.Seconds()
		b.ReportMetric(rate, "msgs/s")
		b.ReportMetric(ms(pct(lat, 50)), "p50-ms")
		b.ReportMetric(ms(pct(lat, 99)), "p99-ms")
		b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
		b.Logf("cvd intake: %d clients for %s: %d messages got 250 (%.0f/s), latency of the 250 p50 %.1f ms, p99 %.1f ms, max %.1f ms; peak RSS %.0f MiB; %d of %d routed (incident opened) by the end",
			clients, dur, len(lat), rate, ms(pct(lat, 50)), ms(pct(lat, 99)), ms(pct(lat, 100)), float64(rss)/(1<<20), routed, total)
	}
}

// send runs one SMTP transaction and returns the time from the end of
// the message data to the server's 250.
func send(c *smtp.Client, from, to, msg string) (time.Duration, error) {
	if err := c.Mail(from, nil); err != nil {
		return 0, err
	}
	if err := c.Rcpt(to, nil); err != nil {
		return 0, err
	}
	w, err := c.Data()
	if err != nil {
		return 0, err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := w.Close(); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

func pct(s []time.Duration, p int) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// spoolProgress counts the spooled messages and those routed.
func spoolProgress(b *testing.B, dir string) (routed, total int) {
	db, err := store.Open(context.Background(), filepath.Join(dir, "cvd.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	err = db.Read(context.Background(), func(tx *sql.Tx) error {
		return tx.QueryRow(`SELECT COUNT(*), COALESCE(SUM(state != 'new'), 0) FROM spool`).Scan(&total, &routed)
	})
	if err != nil {
		b.Fatal(err)
	}
	return routed, total
}

// postfixTool finds one of Postfix's programs.
func postfixTool(b *testing.B, name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/" + name, "/usr/bin/" + name} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	b.Skipf("%s (Debian package postfix) is not installed", name)
	return ""
}

func freeAddr(b *testing.B) string {
	b.Helper()
	return cvdtest.FreeAddr(b)
}

func waitListening(b *testing.B, addr string, what func() string) {
	for deadline := time.Now().Add(60 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("nothing listens on %s after 60s: %v\n%s", addr, err, what())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startSink runs smtp-sink on a loopback port; it accepts every message
// and stores nothing.
func startSink(b *testing.B) string {
	bin := postfixTool(b, "smtp-sink")
	addr := freeAddr(b)
	var args []string
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	cmd := exec.Command(bin, append(args, addr, "1024")...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	waitListening(b, addr, out.String)
	return addr
}

// postfix is a private Postfix instance in a temporary folder: smtpd on
// a loopback port, every accepted message put on hold in its queue.
type postfix struct {
	dir, addr string
}

// startPostfix starts the instance, or returns an error saying why it
// cannot run here (it needs root and the postfix user).
func startPostfix(b *testing.B) (*postfix, error) {
	bin := postfixTool(b, "postfix")
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("a Postfix instance needs root")
	}
	u, err := user.Lookup("postfix")
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	dir, err := os.MkdirTemp("", "cvd-postfix")
	if err != nil {
		return nil, err
	}
	p := &postfix{dir: dir, addr: freeAddr(b)}
	for _, d := range []string{"etc", "queue", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chown(filepath.Join(dir, "data"), uid, -1); err != nil {
		return nil, err
	}
	mainCf := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.%[2]s
mydomain = %[2]s
mydestination = %[2]s
local_recipient_maps =
mynetworks = 127.0.0.0/8
smtpd_client_restrictions = check_client_access static:HOLD
smtpd_client_connection_count_limit = 0
default_process_limit = 100
maillog_file_prefixes = %[1]s
maillog_file = %[1]s/maillog
`, dir, domain)
	masterCf := p.addr + " inet n - n - - smtpd\n" + `pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
smtp unix - - n - - smtp
relay unix - - n - - smtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
`
	if err := os.WriteFile(filepath.Join(dir, "etc", "main.cf"), []byte(mainCf), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "master.cf"), []byte(masterCf), 0o644); err != nil {
		return nil, err
	}
	b.Cleanup(func() {
		exec.Command(bin, "-c", filepath.Join(dir, "etc"), "stop").Run()
		time.Sleep(500 * time.Millisecond)
		os.RemoveAll(dir)
	})
	if out, err := exec.Command(bin, "-c", filepath.Join(dir, "etc"), "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "maillog"))
		return nil, fmt.Errorf("postfix start: %v\n%s%s", err, out, log)
	}
	waitListening(b, p.addr, func() string { log, _ := os.ReadFile(filepath.Join(dir, "maillog")); return string(log) })
	return p, nil
}

// held counts the messages in the instance's hold queue.
func (p *postfix) held() int {
	n := 0
	filepath.WalkDir(filepath.Join(p.dir, "queue", "hold"), func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// smtpSource runs smtp-source: n messages of 1 KiB to rcpt over sessions
// parallel connections, each connection reused for its next message. It
// returns the elapsed time.
func smtpSource(b *testing.B, addr, rcpt string, n, sessions int) time.Duration {
	bin := postfixTool(b, "smtp-source")
	cmd := exec.Command(bin, "-s", strconv.Itoa(sessions), "-m", strconv.Itoa(n), "-l", "1024", "-d",
		"-f", "rita@reporter.example", "-t", rcpt, addr)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		b.Fatalf("smtp-source to %s: %v\n%s", addr, err, out)
	}
	return d
}

func BenchmarkIntakeSmtpSource(b *testing.B) {
	skipUnlessLoad(b)
	n := envInt(b, "CVD_LOAD_MESSAGES", 10000)
	sessions := envInt(b, "CVD_LOAD_CLIENTS", 20)
	for range b.N {
		b.StopTimer()
		// cvd, default configuration.
		dir, cfg := newCVD(b, sessions)
		s := cvdtest.Start(b, dir, nil, "--config", cfg)
		b.StartTimer()
		d := smtpSource(b, s.Addr, "security@"+domain, n, sessions)
		b.StopTimer()
		rss, _ := s.PeakRSS()
		_, total := spoolProgress(b, dir)
		s.Stop(b)
		if total != n {
			b.Errorf("smtp-source sent %d messages, cvd's spool holds %d", n, total)
		}
		cvdRate := float64(n) / d.Seconds()
		b.ReportMetric(cvdRate, "cvd-msgs/s")
		b.Logf("smtp-source -> cvd: %d messages, %d sessions, %s: %.0f/s durably accepted; peak RSS %.0f MiB", n, sessions, d.Round(time.Millisecond), cvdRate, float64(rss)/(1<<20))

		// The reference: Postfix's own queue.
		if p, err := startPostfix(b); err != nil {
			b.Logf("no Postfix instance here (%v); the reference below is smtp-sink only", err)
		} else {
			d := smtpSource(b, p.addr, "security@"+domain, n, sessions)
			held := p.held()
			for deadline := time.Now().Add(30 * time.Second); held < n && time.Now().Before(deadline); held = p.held() {
				time.Sleep(100 * time.Millisecond)
			}
			if held != n {
				b.Errorf("smtp-source sent %d messages, Postfix's hold queue holds %d", n, held)
			}
			rate := float64(n) / d.Seconds()
			b.ReportMetric(rate, "postfix-queue-msgs/s")
			b.Logf("smtp-source -> Postfix queue (hold): %d messages, %d sessions, %s: %.0f/s durably queued", n, sessions, d.Round(time.Millisecond), rate)
		}

		// The client's ceiling: smtp-sink keeps nothing.
		sink := startSink(b)
		d = smtpSource(b, sink, "security@"+domain, n, sessions)
		rate := float64(n) / d.Seconds()
		b.ReportMetric(rate, "smtp-sink-msgs/s")
		b.Logf("smtp-source -> smtp-sink (stores nothing): %d messages, %s: %.0f/s", n, d.Round(time.Millisecond), rate)
	}
}

func BenchmarkRelease(b *testing.B) {
	skipUnlessLoad(b)
	subscribers := envInt(b, "CVD_LOAD_SUBSCRIBERS", 10000)
	for range b.N {
		b.StopTimer()
		sink := startSink(b)
		dir, cfg := newCVD(b, 20)
		cvdtest.SetConfig(b, cfg, "mode", `"smarthost"`)
		cvdtest.SetConfig(b, cfg, "smarthost", strconv.Quote(sink))
		cvdtest.SetConfig(b, cfg, "tls", `"none"`)
		cvdtest.SetConfig(b, cfg, "project", `"libload"`)
		_, pub, err := crypto.GenerateKey("Debian Security", "security@debian.example", crypto.KindCurve25519)
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "keys", "debian.asc"), pub, 0o600); err != nil {
			b.Fatal(err)
		}
		cvdtest.AppendConfig(b, cfg, "[[embargo.roster]]\nname = \"Debian\"\nemail = \"security@debian.example\"\nkey_file = \"keys/debian.asc\"")
		subscribe(b, dir, subscribers)

		// An incident pre-notified for a date three days ahead.
		s := cvdtest.Start(b, dir, nil, "--config", cfg)
		c, err := smtp.Dial(s.Addr)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.SendMail("rita@reporter.example", []string{"security@" + domain}, strings.NewReader(report("r1@reporter.example"))); err != nil {
			b.Fatal(err)
		}
		c.Quit()
		id := waitIncident(b, dir)
		cli := func(args ...string) {
			cvdtest.MustRun(b, dir, nil, append(append([]string{"incident"}, args...), "--config", cfg)...)
		}
		date := time.Now().UTC().Add(72 * time.Hour).Truncate(time.Minute)
		cli("confirm", id)
		cli("set", id, "title", "Load test advisory")
		cli("set", id, "description", "A flaw found while measuring the release.")
		cli("versions", id, "libload", "--introduced", "1.0", "--fixed", "1.0.1")
		cli("embargo", id, date.Format("2006-01-02T15:04Z"))
		cli("notify", id)
		s.Stop(b)

		// Three days later, less a few seconds: the scheduler releases at
		// the date and wakes the delivery worker.
		offset := date.Add(-3 * time.Second).Sub(time.Now())
		s = cvdtest.Start(b, dir, []string{"CVD_CLOCK_OFFSET=" + offset.String()}, "--config", cfg)
		b.StartTimer()
		sent, last := waitAnnounced(b, dir, subscribers, 20*time.Minute)
		b.StopTimer()
		rss, _ := s.PeakRSS()
		s.Stop(b)
		published := publishedAt(b, dir, id)
		d := last.Sub(date)
		b.ReportMetric(d.Seconds(), "release-s")
		b.ReportMetric(float64(sent)/last.Sub(published).Seconds(), "copies/s")
		b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
		b.Logf("release to %d subscribers: published %s after the date, last of %d copies accepted by smtp-sink %s after the date (%.0f copies/s); peak RSS %.0f MiB",
			subscribers, published.Sub(date).Round(time.Millisecond), sent, d.Round(time.Millisecond), float64(sent)/last.Sub(published).Seconds(), float64(rss)/(1<<20))
	}
}

func publishedAt(b *testing.B, dir, id string) time.Time {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "cvd.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var in *store.Incident
	err = db.Read(ctx, func(tx *sql.Tx) error {
		in, err = store.IncidentTx(ctx, tx, id)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return in.PublishedAt
}

// subscribe adds n confirmed subscribers to the announce list, directly
// through the lists package, in one transaction.
func subscribe(b *testing.B, dir string, n int) {
	ctx := context.Background()
	priv, err := os.ReadFile(filepath.Join(dir, "keys", "project.asc"))
	if err != nil {
		b.Fatal(err)
	}
	key, err := crypto.ParseKey(priv)
	if err != nil {
		b.Fatal(err)
	}
	db, err := store.Open(ctx, filepath.Join(dir, "cvd.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	svc := &lists.Service{DB: db, Domain: domain, Key: key}
	if err := svc.EnsureAnnounceList(ctx); err != nil {
		b.Fatal(err)
	}
	err = db.Write(ctx, func(tx *sql.Tx) error {
		for i := range n {
			// 100 domains, as a real list has many.
			email := fmt.Sprintf("user%05d@users%02d.example", i, i%100)
			if _, err := svc.AddMemberTx(ctx, tx, lists.AnnounceList, lists.NewMember{Email: email, Role: lists.RoleSubscriber, Actor: "load"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

func waitIncident(b *testing.B, dir string) string {
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, out, _ := cvdtest.Run(b, dir, nil, "incident", "list", "--config", filepath.Join(dir, "cvd.toml"))
		if f := strings.Fields(out); code == 0 {
			for _, w := range f {
				if len(w) == 8 && w[4] == '-' {
					return w
				}
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("no incident opened:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitAnnounced waits until n announcement rows are sent; it returns how
// many were sent and when the last was recorded.
func waitAnnounced(b *testing.B, dir string, n int, limit time.Duration) (int, time.Time) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "cvd.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(limit)
	for {
		var sent, open int
		var last int64
		err := db.Read(ctx, func(tx *sql.Tx) error {
			return tx.QueryRow(`SELECT COALESCE(SUM(q.state = 'sent'), 0), COALESCE(SUM(q.state IN ('queued', 'sending', 'deferred')), 0),
				COALESCE(MAX(CASE WHEN q.state = 'sent' THEN q.updated_at END), 0)
				FROM queue q JOIN queue_msg m ON m.id = q.msg_id WHERE m.kind = 'announce'`).Scan(&sent, &open, &last)
		})
		if err != nil {
			b.Fatal(err)
		}
		if sent >= n && open == 0 {
			return sent, time.UnixMilli(last).UTC()
		}
		if time.Now().After(deadline) {
			b.Fatalf("after %s: %d announcement copies sent, %d still open, want %d", limit, sent, open, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
