package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// TestReleaseDecisions runs release decisions through an embargoed
// incident: decided by the CLI and by a coordinator's signed x-decide (a
// downstream's is refused), stated in the pre-notification that goes to
// the distributions only (notify --category), reminded to the
// coordinator once when due (the clock moved by restarts), and listed in
// the post-mortem with whether each was kept and who was told, by
// category.
func TestReleaseDecisions(t *testing.T) {
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	deb := gpgtest.New(t, "Debian Security", "security@debian.example", "never")
	cloud := gpgtest.New(t, "Cloud Security", "security@cloud.example", "never")
	dir, cfg := initDir(t, "example.org")
	projectPub, _ := os.ReadFile(filepath.Join(dir, "keys/project.pub.asc"))
	for _, u := range []*gpgtest.User{deb, cloud} {
		u.Import(projectPub)
		name := strings.Split(u.Email, "@")[1]
		os.WriteFile(filepath.Join(dir, "keys", name+".asc"), u.Pub, 0o600)
	}
	cvdtest.AppendConfig(t, cfg, "\n[[embargo.roster]]\nname = \"Debian\"\nemail = \"security@debian.example\"\nkey_file = \"keys/debian.example.asc\"\ncategory = \"distribution\"\n"+
		"\n[[embargo.roster]]\nname = \"CloudCo\"\nemail = \"security@cloud.example\"\nkey_file = \"keys/cloud.example.asc\"\ncategory = \"cloud\"\n")
	w := newBindWorldIn(t, dir, cfg, cora)
	cli := func(env []string, wantCode int, args ...string) string {
		t.Helper()
		code, out, errOut := runCVD(t, dir, env, append(args, "--config", cfg)...)
		if code != wantCode {
			t.Fatalf("cvd %v: exit %d, want %d\n%s%s", args, code, wantCode, out, errOut)
		}
		return out + errOut
	}
	id := w.report("rita@reporter.example", "<rita-dec@reporter.example>", "The parser overflows.\r\n")
	list := "security+" + id + "@example.org"
	cli(nil, 0, "incident", "confirm", id)
	cli(nil, 0, "incident", "set", id, "title", "Overflow in the parser")
	cli(nil, 0, "incident", "set", id, "description", "A long header overflows a buffer.")
	cli(nil, 0, "incident", "versions", id, "libexample", "--fixed", "2.0")
	date := regexp.MustCompile(`embargo \S+ (\S+)\)`).FindStringSubmatch(cli(nil, 0, "incident", "embargo", id, "--propose"))
	cli(nil, 0, "incident", "embargo", id, date[1])

	for _, bad := range [][]string{{"exploit=soon"}, {"public-issue=ftp://x"}, {"colour=blue"}, {"patches=release+7y"}} {
		if out := cli(nil, 1, append([]string{"incident", "decide", id}, bad...)...); !strings.Contains(out, "decide") {
			t.Errorf("decide %v: %s", bad, out)
		}
	}
	out := cli(nil, 0, "incident", "decide", id, "patches=at-release", "public-issue=https://bugs.example.org/123")
	if !strings.Contains(out, "public at the release") {
		t.Errorf("decide: %s", out)
	}
	// The pre-notification goes to the distributions only and states
	// when the patches become public.
	if out := cli(nil, 0, "incident", "notify", id, "--category", "distro"); !strings.Contains(out, deb.Email) || strings.Contains(out, cloud.Email) {
		t.Errorf("notify --category distro: %s", out)
	}
	pre := w.waitPlain(deb, "Upcoming", "Patches:     public at the release", "Public issue: https://bugs.example.org/123")
	if strings.Contains(pre, "Exploit") {
		t.Errorf("pre-notification states an undecided exploit:\n%s", pre)
	}
	if n := len(outboxMail(t, dir)[cloud.Email]); n != 0 {
		t.Errorf("the service provider got %d messages before being notified", n)
	}

	// A coordinator decides by signed keyword; a downstream may not.
	w.send(cora.Email, list, w.signedPost(cora, list, "<dec1@example.org>",
		"Content-Type: text/plain\r\n\r\nx-list: "+id+"\r\nx-decide: tests=release+7d exploit=never\r\n"))
	w.waitPlain(cora, "Results of your commands", "x-decide: "+id+": Tests public 7 days after the release")
	got := w.waitPlain(deb, "Release decision", "Tests:", "public 7 days after the release", "Exploit:", "never published")
	if !strings.Contains(got, date[1][:10]) && !strings.Contains(got, "The public date stays") {
		t.Errorf("decision notice:\n%s", got)
	}
	w.send(deb.Email, list, w.signedPost(deb, list, "<dec2@example.org>",
		"Content-Type: text/plain\r\n\r\nx-list: "+id+"\r\nx-decide: exploit=at-release\r\n"))
	w.waitPlain(deb, "Results of your commands", "refused: decide is for coordinators")
	cli(nil, 0, "incident", "notify", id, "--category", "service-provider")
	w.waitPlain(cloud, "Upcoming", "Tests:       public 7 days after the release")

	show := cli(nil, 0, "incident", "show", id)
	for _, want := range []string{"Release decisions:", "Patches:", "pending", "Exploit:", "never published", "decided by cora@example.org"} {
		if !strings.Contains(show, want) {
			t.Errorf("show lacks %q:\n%s", want, show)
		}
	}
	reminders := func() []string {
		var out []string
		for _, p := range w.plains(cora) {
			if strings.Contains(p, "Release decision due") {
				out = append(out, p)
			}
		}
		return out
	}
	w.s.stop(t)

	// A week later: released at the public date; the at-release decisions
	// are due at once and the coordinator is reminded, once.
	week := []string{"CVD_CLOCK_OFFSET=168h"}
	w.s = startCVD(t, t.TempDir(), week, "--config", cfg)
	waitFor(t, "the reminder of the at-release decisions", func() bool { return len(reminders()) == 1 }, func() string { return w.s.Logs() })
	r := reminders()[0]
	if !strings.Contains(r, "Patches:") || !strings.Contains(r, "https://bugs.example.org/123") || strings.Contains(r, "Tests:") {
		t.Errorf("reminder:\n%s", r)
	}
	if n := len(outboxMail(t, dir)[deb.Email]); n == 0 {
		t.Fatal("no mail to Debian")
	}
	cli(week, 0, "incident", "decide", id, "patches=done")
	w.s.stop(t)
	w.s = startCVD(t, t.TempDir(), week, "--config", cfg)
	time.Sleep(3 * time.Second) // the scheduler's first pass and a delivery poll
	w.s.stop(t)
	if n := len(reminders()); n != 1 {
		t.Errorf("%d reminders after a restart, want 1", n)
	}

	// Two weeks later: the tests are due (7 days after the release).
	later := []string{"CVD_CLOCK_OFFSET=340h"}
	w.s = startCVD(t, t.TempDir(), later, "--config", cfg)
	waitFor(t, "the reminder of the tests", func() bool { return len(reminders()) == 2 }, func() string { return w.s.Logs() })
	time.Sleep(3 * time.Second)
	if n := len(reminders()); n != 2 {
		t.Errorf("%d reminders, want 2", n)
	}
	if r := reminders()[1]; !strings.Contains(r, "Tests:") || strings.Contains(r, "Patches:") {
		t.Errorf("second reminder:\n%s", r)
	}
	// Closed, the incident still takes decisions: the exploit decided
	// "never" was published after all.
	cli(later, 0, "incident", "close", id)
	cli(later, 0, "incident", "decide", id, "exploit=done")
	rep := cli(later, 0, "incident", "report", id)
	for _, want := range []string{
		"Told, by category:", "distribution                     1: Debian", "service-provider                 1: CloudCo",
		"Patches:", "kept: done", "Tests:", "NOT KEPT: due", "Exploit:", "NOT KEPT: decided never, done", "Public issue:",
	} {
		if !strings.Contains(rep, want) {
			t.Errorf("post-mortem lacks %q:\n%s", want, rep)
		}
	}
}
