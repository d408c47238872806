package embargo_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/publish"
	"github.com/cvd-project/cvd/store"
)

// prenotified opens, confirms and pre-notifies an incident due at date.
func (w *world) prenotified(date time.Time) string {
	w.t.Helper()
	id := w.confirmed(embargo.Private)
	w.complete(id)
	w.mustDo(id, func(p *embargo.Op) error { return p.SetEmbargo(date, "") })
	w.mustDo(id, func(p *embargo.Op) error { return p.Notify(nil) })
	return id
}

func (w *world) announcements(id string) int {
	n := 0
	for _, m := range w.queue() {
		if m.kind == "announce" && (m.ref == id || m.ref == lists.AnnounceList) {
			n++
		}
	}
	return n
}

// TestRestartReleasesOnceNeverEarly restarts cvd before, at and after the
// public date, and across a downtime that spans another incident's date.
func TestRestartReleasesOnceNeverEarly(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	debian := w.person("Debian Security", "team@security.debian.example")
	w.addRoster(debian)
	date := w.clock.Now().Add(72 * time.Hour)
	id := w.prenotified(date)

	w.restart()
	w.clock.Set(date.Add(-time.Second))
	if tk, err := w.desk.RunDue(ctx); err != nil || len(tk.Released) != 0 {
		t.Fatalf("a second early: %+v %v", tk, err)
	}
	if next, err := w.desk.NextDue(ctx); err != nil || !next.Equal(date) {
		t.Errorf("next deadline %v (%v), want %v", next, err, date)
	}
	if w.announcements(id) != 0 || w.incident(id).State != store.IncidentPrenotified {
		t.Fatal("published early")
	}

	w.restart()
	w.clock.Set(date)
	if tk, err := w.desk.RunDue(ctx); err != nil || len(tk.Released) != 1 {
		t.Fatalf("at the date: %+v %v", tk, err)
	}
	w.restart()
	w.clock.Set(date.Add(time.Hour))
	if tk, err := w.desk.RunDue(ctx); err != nil || len(tk.Released) != 0 {
		t.Fatalf("after the date: %+v %v", tk, err)
	}
	if n := w.announcements(id); n != 1 {
		t.Errorf("%d announcements, want 1", n)
	}

	// Down across a date: the first pass after the restart catches up,
	// once.
	date2 := w.clock.Now().Add(72 * time.Hour)
	id2 := w.prenotified(date2)
	w.closeDB()
	w.clock.Set(date2.Add(5 * time.Hour))
	w.open()
	if tk, err := w.desk.RunDue(ctx); err != nil || len(tk.Released) != 1 || tk.Released[0] != id2 {
		t.Fatalf("catch-up: %+v %v", tk, err)
	}
	if tk, _ := w.desk.RunDue(ctx); len(tk.Released) != 0 {
		t.Error("released twice after the catch-up")
	}
	if n := w.announcements(id2); n != 1 {
		t.Errorf("%d announcements of %s, want 1", n, id2)
	}
	// The scheduler loop does the same on its own.
	date3 := w.clock.Now().Add(72 * time.Hour)
	id3 := w.prenotified(date3)
	w.clock.Set(date3)
	s := embargo.NewScheduler(w.desk)
	s.Poll = 20 * time.Millisecond
	released := make(chan struct{}, 1)
	s.Done = func() { released <- struct{}{} }
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Run(sctx); close(done) }()
	select {
	case <-released:
	case <-time.After(60 * time.Second):
		t.Error("the scheduler loop did not release")
	}
	cancel()
	<-done
	if w.incident(id3).State != store.IncidentPublished || w.announcements(id3) != 1 {
		t.Errorf("scheduler loop: %s, %d announcements", w.incident(id3).State, w.announcements(id3))
	}
}

const crashEnv = "CVD_EMBARGO_CRASH_CHILD"

// TestReleaseCrashChild is the child of TestKill9AfterRelease: it releases
// and is killed (SIGKILL) right after the release transaction commits,
// before anything is delivered.
func TestReleaseCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("run by TestKill9AfterRelease")
	}
	priv, err := os.ReadFile(filepath.Join(dir, "key.asc"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := crypto.ParseKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339, os.Getenv(crashEnv+"_AT"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), filepath.Join(dir, "cvd.db"))
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return at }
	svc := &lists.Service{DB: db, Domain: domain, Key: key, Now: now}
	d := &embargo.Desk{DB: db, Lists: svc, Domain: domain, Key: key, Policy: embargo.DefaultPolicy(), Announce: "announce@" + domain,
		External: []string{"oss-security@lists.example.net"}, Now: now,
		Project:      publish.Project{Name: "libexample", Vendor: "The Example Project", Domain: domain},
		AfterRelease: func(string) { syscall.Kill(os.Getpid(), syscall.SIGKILL) }}
	d.RunDue(context.Background())
	t.Fatal("not killed: nothing was released")
}

// TestKill9AfterRelease kills the process between the release transaction
// and delivery: after the restart every copy is queued exactly once, the
// scheduler does not release again, and delivery sends each copy once.
func TestKill9AfterRelease(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	debian := w.person("Debian Security", "team@security.debian.example")
	w.addRoster(debian)
	if _, err := w.svc.AddMember(ctx, lists.AnnounceList, lists.NewMember{Email: "sam@users.example", Role: lists.RoleSubscriber, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	date := w.clock.Now().Add(72 * time.Hour)
	id := w.prenotified(date)
	before := len(w.queue())
	dir := filepath.Dir(w.path)
	priv, err := w.key.ArmoredPrivate()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.asc"), priv, 0o600); err != nil {
		t.Fatal(err)
	}
	w.closeDB()

	cmd := exec.Command(os.Args[0], "-test.run=^TestReleaseCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir, crashEnv+"_AT="+date.Add(time.Second).Format(time.RFC3339))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed: %v\n%s", err, out)
	}

	w.open()
	w.clock.Set(date.Add(time.Minute))
	if w.incident(id).State != store.IncidentPublished {
		t.Fatalf("the release did not survive the kill: %s", w.incident(id).State)
	}
	if tk, err := w.desk.RunDue(ctx); err != nil || len(tk.Released) != 0 {
		t.Fatalf("released again after the restart: %+v %v", tk, err)
	}
	q := w.queue()[before:]
	want := map[string]int{"sam@users.example announce": 1, "oss-security@lists.example.net announce": 1,
		debian.Email + " lifted": 1}
	got := map[string]int{}
	for _, m := range q {
		got[m.rcpt+" "+m.kind]++
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: %d queued, want %d (queue %v)", k, got[k], n, got)
		}
	}
	// Delivery after the restart sends each queued copy once.
	if _, err := w.db.RecoverQueue(ctx, w.clock.Now()); err != nil {
		t.Fatal(err)
	}
	sent := map[string]int{}
	for range 3 {
		bs, err := w.db.ClaimQueue(ctx, w.clock.Now(), 1000, nil)
		if err != nil {
			t.Fatal(err)
		}
		var outs []store.QueueOutcome
		for _, b := range bs {
			for _, r := range b.Rcpts {
				sent[r.Addr+" "+b.Kind]++
				outs = append(outs, store.QueueOutcome{ID: r.ID, State: store.QueueSent, Reply: "250 ok"})
			}
		}
		if err := w.db.RecordQueue(ctx, w.clock.Now(), outs); err != nil {
			t.Fatal(err)
		}
	}
	for k := range want {
		if sent[k] != 1 {
			t.Errorf("%s delivered %d times", k, sent[k])
		}
	}
	if strings.Contains(string(out), "not killed") {
		t.Error("child reports it was not killed")
	}
}
