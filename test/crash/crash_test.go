// Package crash kills the built cvd server with SIGKILL at random points
// and restarts it, then checks the durability invariants of the design:
// every message that got a 250 is stored, every queued notice reached the
// outbox at least once, and the announcement went out exactly once and
// never before its time.
//
// The kill points come from a seeded random source; the seed is logged and
// CVD_CRASH_SEED=N replays the same plan. CVD_CRASH_ROUNDS=N (default 20)
// sets the number of kills for a longer run.
package crash

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/store"
)

func TestMain(m *testing.M) { cvdtest.Main(m, cvdtest.Race) }

const (
	domain     = "example.org"
	fanoutList = "crash-fanout"
	intakeList = "crash-intake"
	fanoutSize = 20
	external   = "oss-security@lists.example.net"
)

// world is the test's view of one cvd installation across its restarts.
type world struct {
	t        *testing.T
	rng      *rand.Rand
	dir, cfg string
	outbox   string

	mu       sync.Mutex
	accepted map[string]sent // Message-ID -> what got a 250

	// The embargo.
	incident string
	date     time.Time // the public date
	clock    time.Time // the latest server time a run reached (never goes back)
	released int       // the round in which the release was first seen (0: not yet)

	kills int
	logs  []string // every server run's log, for the final scan
}

type sent struct {
	round int
	raw   string
}

func envInt(t *testing.T, name string, def int64) int64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a number", name, v)
	}
	return n
}

func TestKill9AtRandomPoints(t *testing.T) {
	rounds := int(envInt(t, "CVD_CRASH_ROUNDS", 20))
	if rounds < 3 {
		t.Fatalf("CVD_CRASH_ROUNDS=%d: at least 3 (one per phase)", rounds)
	}
	seed := uint64(envInt(t, "CVD_CRASH_SEED", time.Now().UnixNano()%1e12))
	t.Logf("seed %d (replay with CVD_CRASH_SEED=%d), %d kills", seed, seed, rounds)
	start := time.Now()

	w := &world{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), accepted: map[string]sent{}}
	w.setup()
	nIntake := rounds * 2 / 5
	nFanout := (rounds - nIntake) / 2
	nEmbargo := rounds - nIntake - nFanout
	round := 0
	for range nIntake {
		round++
		w.intakeRound(round)
	}
	t.Logf("%d intake rounds: %d messages got 250 (%s)", nIntake, len(w.accepted), time.Since(start).Round(time.Second))
	for range nFanout {
		round++
		w.fanoutRound(round)
	}
	t.Logf("%d fan-out rounds done (%s)", nFanout, time.Since(start).Round(time.Second))
	for j := range nEmbargo {
		round++
		w.embargoRound(round, j, nEmbargo)
	}
	t.Logf("%d embargo rounds done, release first seen after round %d (%s)", nEmbargo, w.released, time.Since(start).Round(time.Second))
	if w.kills != rounds {
		t.Fatalf("%d kills, want %d", w.kills, rounds)
	}
	w.drainAndCheck()
	t.Logf("seed %d: %d kills, total %s", seed, w.kills, time.Since(start).Round(time.Second))
}

// setup writes the configuration (team, roster, an external list), creates
// the two lists with the CLI, opens and pre-notifies an incident through a
// running server, and subscribes users to the announce list.
func (w *world) setup() {
	t := w.t
	w.dir, w.cfg = cvdtest.InitDir(t, domain)
	w.outbox = filepath.Join(w.dir, "outbox")
	keyFile := func(name, email string) string {
		_, pub, err := crypto.GenerateKey(name, email, crypto.KindCurve25519)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(w.dir, "keys", strings.ReplaceAll(email, "@", "_")+".asc")
		if err := os.WriteFile(f, pub, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	cvdtest.SetConfig(t, w.cfg, "external", `["`+external+`"]`)
	cvdtest.SetConfig(t, w.cfg, "project", `"libcrash"`)
	conf := fmt.Sprintf("[[embargo.team]]\nname = \"Cora\"\nemail = \"cora@%s\"\nkey_file = %q\n", domain, keyFile("Cora", "cora@"+domain))
	for _, d := range []string{"Debian", "Ubuntu"} {
		email := "security@" + strings.ToLower(d) + ".example"
		conf += fmt.Sprintf("\n[[embargo.roster]]\nname = %q\nemail = %q\nkey_file = %q\n", d, email, keyFile(d, email))
	}
	cvdtest.AppendConfig(t, w.cfg, conf)

	cli := func(args ...string) string { return cvdtest.MustRun(t, w.dir, nil, append(args, "--config", w.cfg)...) }
	cli("list", "create", intakeList, "--title", "intake under load", "--allow-unsigned")
	cli("member", "add", intakeList, "cora@"+domain, "--role", "coordinator", "--key", keyFile("Cora", "cora@"+domain))
	for i := range 4 {
		email := fmt.Sprintf("poster%d@posters.example", i)
		cli("member", "add", intakeList, email, "--role", "fixer", "--key", keyFile("Poster", email))
	}
	cli("list", "create", fanoutList, "--title", "fan-out", "--allow-unsigned")
	roles := []string{"coordinator", "fixer", "downstream", "observer"}
	for i := range fanoutSize {
		email := fmt.Sprintf("m%02d@members.example", i)
		cli("member", "add", fanoutList, email, "--role", roles[min(i, 1+i%3)], "--key", keyFile(fmt.Sprintf("Member %d", i), email))
	}

	s := cvdtest.Start(t, w.dir, nil, "--config", w.cfg)
	for i := range 5 {
		cli("member", "add", "announce", fmt.Sprintf("sub%d@users.example", i), "--role", "subscriber")
	}
	c, err := smtp.Dial(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	report := "From: Rita <rita@reporter.example>\r\nTo: security@" + domain + "\r\nSubject: overflow\r\nMessage-ID: <report@reporter.example>\r\n\r\nThe parser overflows.\r\n"
	if err := c.SendMail("rita@reporter.example", []string{"security@" + domain}, strings.NewReader(report)); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	ack := w.waitMail("rita@reporter.example", 1, 60*time.Second)[0]
	m := regexp.MustCompile(`incident (\d{4}-\d{3})`).FindSubmatch(ack.Raw)
	if m == nil {
		t.Fatalf("acknowledgement without an incident ID:\n%s", ack.Raw)
	}
	w.incident = string(m[1])
	w.date = time.Now().UTC().Add(72 * time.Hour).Truncate(time.Minute)
	cli("incident", "confirm", w.incident)
	cli("incident", "set", w.incident, "title", "Parser overflow")
	cli("incident", "set", w.incident, "description", "A long header overflows the parser.")
	cli("incident", "cvss", w.incident, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H")
	cli("incident", "versions", w.incident, "libcrash", "--introduced", "1.0", "--fixed", "1.2.3")
	cli("incident", "embargo", w.incident, w.date.Format("2006-01-02T15:04Z"))
	cli("incident", "notify", w.incident)
	w.waitMail("security@debian.example", 1, 60*time.Second)
	w.waitMail("security@ubuntu.example", 1, 60*time.Second)
	s.Stop(t)
	w.logs = append(w.logs, s.Logs())
	w.clock = time.Now()
	t.Logf("incident %s pre-notified, public date %s", w.incident, w.date.Format(time.RFC3339))
}

// waitMail waits until rcpt has n messages in the outbox.
func (w *world) waitMail(rcpt string, n int, d time.Duration) []cvdtest.Mail {
	w.t.Helper()
	deadline := time.Now().Add(d)
	for {
		var got []cvdtest.Mail
		for _, m := range cvdtest.Outbox(w.t, w.outbox) {
			if m.DeliveredTo == rcpt {
				got = append(got, m)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s has %d messages in the outbox, want %d", rcpt, len(got), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// start starts the server with its clock at realNow+offset.
func (w *world) start(offset time.Duration) *cvdtest.Server {
	var env []string
	if offset != 0 {
		env = []string{"CVD_CLOCK_OFFSET=" + offset.String()}
	}
	return cvdtest.Start(w.t, w.dir, env, "--config", w.cfg)
}

// kill kills s and notes the server time it reached.
func (w *world) kill(s *cvdtest.Server, offset time.Duration) time.Time {
	s.Kill(w.t)
	at := time.Now().Add(offset)
	w.kills++
	w.logs = append(w.logs, s.Logs())
	if at.After(w.clock) {
		w.clock = at
	}
	return at
}

// countOutbox counts the outbox files delivered to addresses ending in suffix.
func (w *world) countOutbox(suffix string) int {
	n := 0
	for _, m := range cvdtest.Outbox(w.t, w.outbox) {
		if strings.HasSuffix(m.DeliveredTo, suffix) {
			n++
		}
	}
	return n
}

// intakeRound runs four SMTP clients sending reports to security@ and
// posts to an incident list, and kills the server after a random number
// of 250s.
func (w *world) intakeRound(round int) {
	t0 := time.Now()
	s := w.start(0)
	tStart := time.Since(t0)
	killAt := 5 + w.rng.IntN(56)
	var count sync.WaitGroup
	var n int
	var nmu sync.Mutex
	enough := make(chan struct{})
	seeds := make([]uint64, 4)
	for i := range seeds {
		seeds[i] = w.rng.Uint64()
	}
	for c := range 4 {
		count.Add(1)
		go func() {
			defer count.Done()
			rng := rand.New(rand.NewPCG(seeds[c], uint64(c)))
			cl, err := smtp.Dial(s.Addr)
			if err != nil {
				return
			}
			defer cl.Close()
			for i := 0; ; i++ {
				id := fmt.Sprintf("r%02d.c%d.%d@crash.example", round, c, i)
				from := fmt.Sprintf("poster%d@posters.example", c)
				rcpts := []string{"security+" + intakeList + "@" + domain}
				switch rng.IntN(8) {
				case 0: // a new report: opens an incident
					from = fmt.Sprintf("reporter%d@reporters.example", c)
					rcpts = []string{"security@" + domain}
				case 1: // both at once
					rcpts = append(rcpts, "security@"+domain)
				}
				raw := fmt.Sprintf("From: <%s>\r\nTo: %s\r\nSubject: round %d client %d message %d\r\nMessage-ID: <%s>\r\n\r\n%s",
					from, strings.Join(rcpts, ", "), round, c, i, id, strings.Repeat(strings.Repeat("x", 76)+"\r\n", 1+rng.IntN(40)))
				if err := cl.SendMail(from, rcpts, strings.NewReader(raw)); err != nil {
					return // killed
				}
				w.mu.Lock()
				w.accepted[id] = sent{round: round, raw: raw}
				w.mu.Unlock()
				nmu.Lock()
				n++
				if n == killAt {
					close(enough)
				}
				nmu.Unlock()
			}
		}()
	}
	select {
	case <-enough:
	case <-time.After(30 * time.Second):
		w.t.Logf("round %d: only %d messages in 30s", round, n)
	}
	w.kill(s, 0)
	count.Wait()
	w.t.Logf("round %d (intake): killed after %d messages got 250 (start %s, total %s)", round, n, tStart, time.Since(t0))
}

// fanoutRound posts to the 20-member list and kills the server after a
// random number of the copies reached the outbox (0: right after the 250).
func (w *world) fanoutRound(round int) {
	s := w.start(0)
	const posts = 2
	before := w.countOutbox("@members.example")
	killAfter := w.rng.IntN(posts*(fanoutSize-1) + 4)
	cl, err := smtp.Dial(s.Addr)
	if err != nil {
		w.t.Fatal(err)
	}
	for i := range posts {
		id := fmt.Sprintf("fan%02d.%d@members.example", round, i)
		raw := fmt.Sprintf("From: Member 0 <m00@members.example>\r\nTo: security+%s@%s\r\nSubject: fan-out %d.%d\r\nMessage-ID: <%s>\r\n\r\nplease review the patch\r\n",
			fanoutList, domain, round, i, id)
		if err := cl.SendMail("m00@members.example", []string{"security+" + fanoutList + "@" + domain}, strings.NewReader(raw)); err != nil {
			w.t.Fatalf("round %d: post %d: %v", round, i, err)
		}
		w.mu.Lock()
		w.accepted[id] = sent{round: round, raw: raw}
		w.mu.Unlock()
	}
	cl.Quit()
	// Past the last copy: kill a little after the fan-out finished.
	target := min(killAfter, posts*(fanoutSize-1))
	deadline := time.Now().Add(60 * time.Second)
	got := 0
	for {
		got = w.countOutbox("@members.example") - before
		if got >= target || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if killAfter > target {
		time.Sleep(time.Duration(w.rng.IntN(300)) * time.Millisecond)
	}
	w.kill(s, 0)
	w.t.Logf("round %d (fan-out): killed after %d copies (aimed at %d of %d)", round, got, killAfter, posts*(fanoutSize-1))
}

// embargoRound kills the server at a planned moment of its clock: the
// rounds' kill times are spread from 2s before the public date to 3s
// after it (with jitter), and each run starts where the last one's clock
// stopped, as if the restart took no time. A kill before the date must
// find nothing released.
func (w *world) embargoRound(round, j, n int) {
	target := w.date.Add(-2*time.Second + time.Duration(j)*5*time.Second/time.Duration(n) +
		time.Duration(w.rng.Int64N(int64(600*time.Millisecond))) - 300*time.Millisecond)
	startClock := w.clock.Add(time.Millisecond)
	if early := target.Add(-1500 * time.Millisecond); early.After(startClock) {
		startClock = early
	}
	offset := startClock.Sub(time.Now())
	s := w.start(offset)
	if d := target.Sub(time.Now().Add(offset)); d > 0 {
		time.Sleep(d)
	}
	at := w.kill(s, offset)

	in, announce := w.releaseState()
	switch {
	case at.Before(w.date.Add(-100*time.Millisecond)) && (in.State == store.IncidentPublished || announce > 0):
		w.t.Errorf("round %d: killed at %s, before the date %s, but the incident is %s with %d announcements queued",
			round, at.Format(time.RFC3339Nano), w.date.Format(time.RFC3339), in.State, announce)
	case in.State == store.IncidentPublished && w.released == 0:
		w.released = round
	}
	delivered := 0
	for _, m := range cvdtest.Outbox(w.t, w.outbox) {
		if strings.Contains(cvdtest.Header(m.Raw, "Subject"), "Parser overflow") {
			delivered++
		}
	}
	w.t.Logf("round %d (embargo): server clock %+.2fs .. %+.2fs around the date; incident %s, %d announcements queued, %d delivered",
		round, startClock.Sub(w.date).Seconds(), at.Sub(w.date).Seconds(), in.State, announce, delivered)
}

func (w *world) openDB() *store.DB {
	db, err := store.Open(context.Background(), filepath.Join(w.dir, "cvd.db"))
	if err != nil {
		w.t.Fatal(err)
	}
	return db
}

// releaseState reads the incident and counts its announcement rows.
func (w *world) releaseState() (*store.Incident, int) {
	db := w.openDB()
	defer db.Close()
	in := w.readIncident(db)
	return in, len(announcements(w.t, db, w.incident))
}

func (w *world) readIncident(db *store.DB) *store.Incident {
	var in *store.Incident
	ctx := context.Background()
	err := db.Read(ctx, func(tx *sql.Tx) error {
		var err error
		in, err = store.IncidentTx(ctx, tx, w.incident)
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return in
}

func allQueue(t *testing.T, db *store.DB) []store.QueueEntry {
	rows, err := db.ListQueue(context.Background(), store.QueueFilter{Limit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// announcements are the incident's announcement rows: to the announce
// list's subscribers and to the external lists.
func announcements(t *testing.T, db *store.DB, id string) []store.QueueEntry {
	var out []store.QueueEntry
	for _, r := range allQueue(t, db) {
		if r.Kind == "announce" && (r.Ref == id || r.Ref == "announce") && !strings.HasPrefix(r.Rcpt, "announce") {
			out = append(out, r)
		}
	}
	return out
}

// drainAndCheck runs the server past the date until everything is routed
// and delivered, stops it cleanly, and checks the invariants.
func (w *world) drainAndCheck() {
	t := w.t
	startClock := w.date.Add(2 * time.Second)
	if !startClock.After(w.clock) {
		startClock = w.clock.Add(time.Millisecond)
	}
	offset := startClock.Sub(time.Now())
	s := w.start(offset)
	db := w.openDB()
	defer db.Close()
	ctx := context.Background()
	deadline := time.Now().Add(150 * time.Second)
	for {
		pending, err := db.PendingSpool(ctx, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		busy, err := db.ListQueue(ctx, store.QueueFilter{States: []string{store.QueueQueued, store.QueueSending, store.QueueDeferred}, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) == 0 && len(busy) == 0 && w.readIncident(db).State == store.IncidentPublished {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained after 150s: %d spool recipients pending, queue rows busy: %+v", len(pending), busy)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.Stop(t)
	w.logs = append(w.logs, s.Logs())

	// Every 250 is stored, byte for byte, and routed.
	spool, err := db.ListSpool(ctx, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	states := map[string]int{}
	for _, row := range spool {
		m, err := db.SpooledMessage(ctx, row.ID)
		if err != nil {
			t.Fatal(err)
		}
		stored[string(m.Raw)] = true
		states[m.State]++
	}
	lost := 0
	for id, s := range w.accepted {
		if !stored[s.raw] {
			lost++
			t.Errorf("message <%s> got 250 in round %d but is not in the spool", id, s.round)
		}
	}
	t.Logf("spool: %d messages got 250, %d rows stored (%v), %d lost", len(w.accepted), len(spool), states, lost)
	if states[store.SpoolNew] > 0 {
		t.Errorf("%d spool rows never routed", states[store.SpoolNew])
	}

	// Every queue row was delivered, and is in the outbox at least once;
	// nothing is in the outbox without a row.
	rows := allQueue(t, db)
	files := map[string][]cvdtest.Mail{}
	for _, m := range cvdtest.Outbox(t, w.outbox) {
		files[m.Token] = append(files[m.Token], m)
	}
	byToken := map[string]store.QueueEntry{}
	dups, kinds := 0, map[string]int{}
	for _, r := range rows {
		byToken[r.Token] = r
		kinds[r.Kind]++
		fs := files[r.Token]
		if r.State != store.QueueSent {
			t.Errorf("queue row %d (%s to %s) is %s: %s", r.ID, r.Kind, r.Rcpt, r.State, r.LastReply)
		}
		if len(fs) == 0 {
			t.Errorf("queue row %d (%s to %s, %s) is not in the outbox", r.ID, r.Kind, r.Rcpt, r.State)
		}
		for _, f := range fs {
			if !strings.EqualFold(f.DeliveredTo, r.Rcpt) {
				t.Errorf("%s carries row %d's token but is for %s, not %s", f.File, r.ID, f.DeliveredTo, r.Rcpt)
			}
		}
		dups += max(len(fs)-1, 0)
	}
	for tok, fs := range files {
		if _, ok := byToken[tok]; !ok {
			t.Errorf("%d outbox files (e.g. %s for %s) belong to no queue row", len(fs), fs[0].File, fs[0].DeliveredTo)
		}
	}
	t.Logf("queue: %d rows %v, all sent; outbox: %d files, %d of them sent again after a kill (at least once)", len(rows), kinds, len(rows)+dups, dups)
	if n := len(files[""]); n > 0 {
		t.Errorf("%d outbox files without a VERP return path", n)
	}

	// The announcement: released once, at or after the date, one row per
	// subscriber and external list, every copy dated at or after the date.
	in := w.readIncident(db)
	if in.PublishedAt.Before(w.date) {
		t.Errorf("published at %s, before the date %s", in.PublishedAt, w.date)
	}
	ann := announcements(t, db, w.incident)
	want := []string{external}
	for i := range 5 {
		want = append(want, fmt.Sprintf("sub%d@users.example", i))
	}
	var got []string
	for _, r := range ann {
		got = append(got, r.Rcpt)
		if r.CreatedAt.Before(w.date) {
			t.Errorf("announcement row %d to %s queued at %s, before the date", r.ID, r.Rcpt, r.CreatedAt)
		}
		for _, f := range files[r.Token] {
			d, err := mailDate(cvdtest.Header(f.Raw, "Date"))
			if err != nil || d.Before(w.date) {
				t.Errorf("announcement to %s dated %q (%v), before the date %s", r.Rcpt, cvdtest.Header(f.Raw, "Date"), err, w.date)
			}
			if sec, _ := strconv.ParseInt(strings.SplitN(filepath.Base(f.File), ".", 2)[0], 10, 64); sec < w.date.Unix() {
				t.Errorf("announcement to %s delivered at %s, before the date", r.Rcpt, time.Unix(sec, 0).UTC())
			}
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("announcement rows to %v, want exactly one to each of %v", got, want)
	}
	subject := "Parser overflow"
	for _, fs := range files {
		for _, f := range fs {
			if strings.Contains(cvdtest.Header(f.Raw, "Subject"), subject) {
				if r, ok := byToken[f.Token]; !ok || r.Kind != "announce" {
					t.Errorf("%s to %s carries the advisory's subject in clear but is no announcement row", f.File, f.DeliveredTo)
				}
			}
		}
	}
	t.Logf("announcement: %d rows, published %s (date %s), first seen released after round %d",
		len(ann), in.PublishedAt.Format(time.RFC3339Nano), w.date.Format(time.RFC3339), w.released)

	for i, l := range w.logs {
		for _, bad := range []string{"DATA RACE", "panic:", "level=ERROR"} {
			if j := strings.Index(l, bad); j >= 0 {
				t.Errorf("server run %d logged %q:\n%s", i, bad, l[max(0, j-500):min(len(l), j+1500)])
			}
		}
	}
}

func mailDate(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC1123Z, "Mon, 2 Jan 2006 15:04:05 -0700", time.RFC1123} {
		if d, err := time.Parse(layout, v); err == nil {
			return d, nil
		}
	}
	return time.Time{}, fmt.Errorf("unparsable date")
}
