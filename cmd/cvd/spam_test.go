package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/cvdtest"
)

// startRspamd runs Debian's rspamd on a loopback port with a private
// configuration (the packaged rules, no Redis, no DNS) and returns its
// normal worker's URL. It skips when rspamd is not installed, unless
// CI=true.
func startRspamd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("rspamd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("rspamd is not installed (apt-get install rspamd; test.sh does)")
		}
		t.Skip("rspamd is not installed: apt-get install -y rspamd (test.sh does) to run the spam filter test")
	}
	if _, err := os.Stat("/etc/rspamd/common.conf"); err != nil {
		t.Fatalf("rspamd without its packaged configuration: %v", err)
	}
	dir := t.TempDir()
	addr := cvdtest.FreeAddr(t)
	conf := `.include "$CONFDIR/common.conf"
options {
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    disable_hyperscan = true;
    dns { timeout = 200ms; retransmits = 1; nameserver = ["127.0.0.1:1"]; }
}
logging { type = "file"; filename = "$LOGDIR/rspamd.log"; level = "warning"; }
worker "normal" {
    bind_socket = "` + addr + `";
    .include "$CONFDIR/worker-normal.inc"
    count = 1;
}
`
	if err := os.WriteFile(filepath.Join(dir, "rspamd.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-f", "-c", filepath.Join(dir, "rspamd.conf")}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root", "-g", "root")
	}
	for _, v := range []string{"CONFDIR=/etc/rspamd", "LOCAL_CONFDIR=" + dir, "RUNDIR=" + dir, "DBDIR=" + dir, "LOGDIR=" + dir} {
		args = append(args, "--var", v)
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	url := "http://" + addr
	deadline := time.Now().Add(120 * time.Second)
	for {
		resp, err := http.Get(url + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "rspamd.log"))
			t.Fatalf("rspamd exited: %s\n%s", out.String(), log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "rspamd.log"))
			t.Fatalf("rspamd not ready after 120s: %s\n%s", out.String(), log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// TestSpamGoesToTriage has a real rspamd score the reports: GTUBE waits in
// triage with its score (no incident, no reply); a plain report opens its
// incident and is acknowledged.
func TestSpamGoesToTriage(t *testing.T) {
	url := startRspamd(t)
	dir, cfg := initDir(t, "example.org")
	cvdtestSetSpam(t, cfg, url)
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)

	spamMsg := fmt.Sprintf("From: <sam@spam.example>\r\nTo: security@example.org\r\nSubject: offer\r\nMessage-ID: <s1@spam.example>\r\n\r\n%s\r\n", gtube)
	if err := smtpSend(s.addr, "sam@spam.example", spamMsg); err != nil {
		t.Fatal(err)
	}
	if err := smtpSend(s.addr, "rita@reporter.example", "From: Rita <rita@reporter.example>\r\nTo: security@example.org\r\nSubject: crash\r\nMessage-ID: <r1@reporter.example>\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\n\r\nThe parser crashes on long input.\r\n"); err != nil {
		t.Fatal(err)
	}
	waitMail(t, dir, "rita@reporter.example", 1)
	ids := triageIDs(t, dir, cfg)
	if len(ids) != 1 {
		t.Fatalf("%d reports in triage, want the GTUBE one", len(ids))
	}
	out := mustRun(t, dir, "triage", "show", ids[0], "--config", cfg)
	if !strings.Contains(out, "sam@spam.example") || !strings.Contains(out, "spam filter score") || !strings.Contains(out, "score:") {
		t.Fatalf("triage show:\n%s", out)
	}
	if inc := incidentIDs(t, dir, cfg); len(inc) != 1 {
		t.Fatalf("%d incidents, want 1 (the plain report's)", len(inc))
	}
	if got := outboxMail(t, dir)["sam@spam.example"]; len(got) != 0 {
		t.Fatalf("cvd replied to the spam: %d messages", len(got))
	}
}

// cvdtestSetSpam points cfg's [spam] at rspamd.
func cvdtestSetSpam(t *testing.T, cfg, url string) {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), `# rspamd_url = ""`, `rspamd_url = "`+url+`"`, 1)
	if s == string(b) {
		t.Fatalf("%s has no rspamd_url line", cfg)
	}
	if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSpamFilterDownLetsReportsThrough: with rspamd unreachable a report
// still opens its incident (a filter that is down must not lose reports),
// and the failure is logged.
func TestSpamFilterDownLetsReportsThrough(t *testing.T) {
	url := "http://" + cvdtest.FreeAddr(t)
	dir, cfg := initDir(t, "example.org")
	cvdtestSetSpam(t, cfg, url)
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	if err := smtpSend(s.addr, "rita@reporter.example", "From: Rita <rita@reporter.example>\r\nTo: security@example.org\r\nSubject: crash\r\nMessage-ID: <r1@reporter.example>\r\n\r\nIt crashes.\r\n"); err != nil {
		t.Fatal(err)
	}
	waitMail(t, dir, "rita@reporter.example", 1)
	if n := len(incidentIDs(t, dir, cfg)); n != 1 {
		t.Fatalf("%d incidents, want 1", n)
	}
	if !strings.Contains(s.logs(), "spam filter failed: report let through") {
		t.Errorf("no log line for the failed spam check:\n%s", s.logs())
	}
}
