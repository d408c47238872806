package embargo_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/deps"
	"github.com/cvd-project/cvd/embargo"
)

// hostileRecord is an OSV record whose texts try to inject a header into
// the team's notice and to reverse the text of the incident's title.
const hostileRecord = `{"id": "GHSA-evil-evil-evil", "modified": "2026-01-01T00:00:00Z",
 "summary": "Overflow\r\nBcc: victim@example.com\r\n\r\nfake body \u202egnp.exe",
 "aliases": ["CVE-2026-0001\nX-Evil: 1"],
 "affected": [{"package": {"ecosystem": "npm", "name": "left-pad"},
  "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.3.0"}]}]}]}`

func osvFolder(t *testing.T, records ...string) string {
	t.Helper()
	dir := t.TempDir()
	for i, r := range records {
		if err := os.WriteFile(filepath.Join(dir, "r"+string(rune('a'+i))+".json"), []byte(r), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestDependencyHostileRecord: upstream text reaches the team's notice
// and the incident's title on one line, without control or bidirectional
// formatting characters.
func TestDependencyHostileRecord(t *testing.T) {
	w := newWorld(t)
	cora := w.person("Cora", "cora@example.org")
	w.addTeam(cora)
	ctx := context.Background()
	check := &deps.Check{OSVData: osvFolder(t, hostileRecord), Components: []deps.Component{{Ecosystem: "npm", Name: "left-pad", Version: "1.2.0"}}}
	res, rec, err := w.desk.CheckDependencies(ctx, check)
	if err != nil || len(res.Matches) != 1 || rec.Opened() != 1 {
		t.Fatalf("check: %v %+v %+v", err, res, rec)
	}
	in := w.incident(rec.Outcomes[0].Incident)
	for _, s := range []string{in.Facts.Title, in.Facts.Dependency.Summary, strings.Join(in.Facts.Dependency.Aliases, " ")} {
		if strings.ContainsAny(s, "\r\n\u202e") {
			t.Errorf("upstream text kept a control character: %q", s)
		}
	}
	if in.Reporter != "" || in.Privacy != embargo.Public {
		t.Errorf("reporter %q, privacy %s", in.Reporter, in.Privacy)
	}
	notice := w.decrypt(cora, one(t, w.queue(), cora.Email, "dependency"))
	head, _, _ := strings.Cut(notice, "\r\n\r\n")
	if strings.Contains(strings.ToLower(head), "\nbcc:") || strings.Contains(head, "X-Evil") {
		t.Errorf("the notice's header was injected:\n%s", head)
	}
}

// TestDependencyWatchDue: the daily check is due at once, then a day
// after the last check, by the desk's clock; a restart keeps that time.
func TestDependencyWatchDue(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	check := func() *deps.Check {
		return &deps.Check{OSVData: osvFolder(t, hostileRecord), Components: []deps.Component{{Ecosystem: "npm", Name: "left-pad", Version: "1.3.0"}}}
	}
	watch := &embargo.DependencyWatch{Desk: w.desk, Check: check, Every: 24 * time.Hour}
	if due, err := watch.Due(ctx); err != nil || !due.IsZero() {
		t.Fatalf("never checked: due %v %v", due, err)
	}
	checkedAt := w.clock.Now()
	if _, _, err := w.desk.CheckDependencies(ctx, check()); err != nil {
		t.Fatal(err)
	}
	w.restart()
	watch.Desk = w.desk
	due, err := watch.Due(ctx)
	if err != nil || !due.Equal(checkedAt.Add(24*time.Hour)) {
		t.Fatalf("due %v %v, want %v", due, err, checkedAt.Add(24*time.Hour))
	}
	// Run checks when due, by the injected clock, and then waits.
	w.clock.Advance(25 * time.Hour)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watch.Run(runCtx)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if due, _ := watch.Due(ctx); due.Equal(w.clock.Now().Add(24 * time.Hour)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watch did not check when due")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
}

const leftPadRecord = `{"id": "GHSA-left-pad-0001", "modified": "2026-01-01T00:00:00Z", "summary": "Padding overflow",
 "affected": [{"package": {"ecosystem": "npm", "name": "left-pad"},
  "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.3.0"}]}]}]}`

// TestDependencyMatchAfterDecision: a component an advisory matches after
// the team decided "not affected" opens no incident, is reported to the
// coordinators, and stays out of the VEX statement until the team
// decides again.
func TestDependencyMatchAfterDecision(t *testing.T) {
	w := newWorld(t)
	cora := w.person("Cora", "cora@example.org")
	w.addTeam(cora)
	ctx := context.Background()
	osv := osvFolder(t, leftPadRecord)
	check := func(versions ...string) *embargo.DependencyResult {
		c := &deps.Check{OSVData: osv}
		for _, v := range versions {
			c.Components = append(c.Components, deps.Component{Ecosystem: "npm", Name: "left-pad", Version: v})
		}
		_, rec, err := w.desk.CheckDependencies(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	rec := check("1.1.0")
	id := rec.Outcomes[0].Incident
	w.mustDo(id, func(p *embargo.Op) error { return p.NotAffected("vulnerable_code_not_present", "") })
	before := len(w.queue())
	rec = check("1.1.0", "1.2.0")
	if rec.Opened() != 0 || rec.Added() != 1 {
		t.Fatalf("second check: %+v", rec)
	}
	more := w.decrypt(cora, one(t, w.since(before), cora.Email, "dependency"))
	if !strings.Contains(more, "left-pad 1.2.0 (npm)") || !strings.Contains(more, "does not cover them") {
		t.Errorf("the coordinators' notice:\n%s", more)
	}
	vexComponents := func() []string {
		s, err := w.desk.VEX(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range s.Components {
			out = append(out, c.Version)
		}
		return out
	}
	if got := vexComponents(); strings.Join(got, ",") != "1.1.0" {
		t.Errorf("the VEX statement covers %v before the team decided again", got)
	}
	w.mustDo(id, func(p *embargo.Op) error { return p.NotAffected("vulnerable_code_not_present", "") })
	if got := vexComponents(); strings.Join(got, ",") != "1.1.0,1.2.0" {
		t.Errorf("after deciding again the VEX statement covers %v", got)
	}
}
