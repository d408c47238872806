package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/internal/gpgtest"
)

// triageIDs runs 'cvd triage list' and returns the IDs of the waiting
// reports.
func triageIDs(t *testing.T, dir, cfg string) []string {
	t.Helper()
	code, out, errOut := runCVD(t, dir, nil, "triage", "list", "--config", cfg)
	if code != 0 {
		t.Fatalf("cvd triage list: exit %d\n%s%s", code, out, errOut)
	}
	var ids []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		if f := strings.Fields(l); len(f) > 0 {
			ids = append(ids, f[0])
		}
	}
	return ids
}

func incidentIDs(t *testing.T, dir, cfg string) []string {
	t.Helper()
	code, out, errOut := runCVD(t, dir, nil, "incident", "list", "--config", cfg)
	if code != 0 {
		t.Fatalf("cvd incident list: exit %d\n%s%s", code, out, errOut)
	}
	return regexp.MustCompile(`(?m)^\d{4}-\d{3}\b`).FindAllString(out, -1)
}

// sendReports sends n reports from one sender to security@ over conns
// SMTP connections.
func sendReports(t *testing.T, addr, from string, n, conns int) {
	t.Helper()
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.Dial(addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for i := range next {
				msg := fmt.Sprintf("From: <%s>\r\nTo: security@example.org\r\nSubject: secret flood subject %d\r\nMessage-ID: <flood%d@flood.example>\r\n\r\nreport %d\r\n", from, i, i, i)
				if err := c.SendMail(from, []string{"security@example.org"}, strings.NewReader(msg)); err != nil {
					errs <- err
					return
				}
			}
			c.Quit()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestFloodGoesToTriage is a flood of 200 reports from one sender: the
// default limit (3 per hour per sender) opens 3 incidents and
// acknowledges 3 reports; the other 197 wait in 'cvd triage list' with no
// reply; the team gets one digest, sealed; a genuine report from another
// sender still opens its incident; accept opens one incident from the
// queue, drop removes one.
func TestFloodGoesToTriage(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	projectPub, _ := os.ReadFile(filepath.Join(dir, "keys/project.pub.asc"))
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	cora.Import(projectPub)
	os.WriteFile(filepath.Join(dir, "keys/cora.asc"), cora.Pub, 0o600)
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\n[[embargo.team]]\nname = \"Cora\"\nemail = \"cora@example.org\"\nkey_file = \"keys/cora.asc\"\n")
	f.Close()
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)

	const flooder = "flood@flood.example"
	sendReports(t, s.addr, flooder, 200, 5)
	deadline := time.Now().Add(90 * time.Second)
	var waiting []string
	for {
		waiting = triageIDs(t, dir, cfg)
		if len(waiting) >= 197 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(waiting) != 197 {
		t.Fatalf("%d reports wait in triage, want 197", len(waiting))
	}
	if ids := incidentIDs(t, dir, cfg); len(ids) != 3 {
		t.Fatalf("the flood opened %d incidents, want 3: %v", len(ids), ids)
	}
	// A genuine report from someone else is not held.
	if err := smtpSend(s.addr, "rita@reporter.example", "From: Rita <rita@reporter.example>\r\nTo: security@example.org\r\nSubject: crash\r\nMessage-ID: <r1@reporter.example>\r\n\r\nThe parser crashes.\r\n"); err != nil {
		t.Fatal(err)
	}
	waitMail(t, dir, "rita@reporter.example", 1)
	if ids := incidentIDs(t, dir, cfg); len(ids) != 4 {
		t.Fatalf("%d incidents after the genuine report, want 4: %v", len(ids), ids)
	}

	// One digest to the team during the flood, sealed: the subjects are
	// inside only. An hour later (cvd restarted with its clock an hour on)
	// the next lists all 197.
	digests := func(want int) []string {
		var out []string
		deadline := time.Now().Add(30 * time.Second)
	again:
		for _, m := range waitMail(t, dir, "cora@example.org", 1) {
			if strings.Contains(string(m), "secret flood subject") {
				t.Fatalf("a flood subject in clear in mail to the team:\n%s", m)
			}
			if body, _, err := cora.Decrypt(m); err == nil && strings.Contains(body, "waiting in triage") {
				out = append(out, body)
			}
		}
		if len(out) < want && time.Now().Before(deadline) {
			out = nil
			time.Sleep(100 * time.Millisecond)
			goto again
		}
		if len(out) != want {
			t.Fatalf("%d triage digests to the team, want %d: %q", len(out), want, out)
		}
		return out
	}
	d := digests(1)
	if !strings.Contains(d[0], "secret flood subject") || !strings.Contains(d[0], "sender over its limit") {
		t.Errorf("digest does not list the waiting reports:\n%s", d[0])
	}
	s.stop(t)
	s = startCVD(t, t.TempDir(), []string{"CVD_CLOCK_OFFSET=61m"}, "--config", cfg)
	d = digests(2)
	if !strings.Contains(d[0]+d[1], "waiting in triage: 197") {
		t.Errorf("the digest an hour later does not list the 197 waiting:\n%s", d[1])
	}
	// The flood got 3 acknowledgements, no more.
	if got := len(outboxMail(t, dir)[flooder]); got != 3 {
		t.Fatalf("the flooder got %d messages from cvd, want 3", got)
	}

	// Accept one: its incident opens and it is acknowledged.
	out := mustRun(t, dir, "triage", "accept", waiting[0], "--config", cfg)
	if !regexp.MustCompile(`incident \d{4}-\d{3} opened`).MatchString(out) {
		t.Fatalf("triage accept: %s", out)
	}
	if ids := incidentIDs(t, dir, cfg); len(ids) != 5 {
		t.Fatalf("%d incidents after accept, want 5", len(ids))
	}
	waitMail(t, dir, flooder, 4)
	// Drop one.
	mustRun(t, dir, "triage", "drop", waiting[1], "--config", cfg)
	left := triageIDs(t, dir, cfg)
	if len(left) != 195 || left[0] != waiting[2] {
		t.Fatalf("after accept and drop %d wait (first %v), want 195 starting with %s", len(left), left[:1], waiting[2])
	}
	if code, _, errOut := runCVD(t, dir, nil, "triage", "show", waiting[1], "--config", cfg); code != 1 || !strings.Contains(errOut, "no report") {
		t.Fatalf("triage show of a dropped report: exit %d, %s", code, errOut)
	}
	out = mustRun(t, dir, "triage", "show", waiting[2], "--config", cfg)
	if !strings.Contains(out, flooder) || !strings.Contains(out, "sender over its limit") {
		t.Fatalf("triage show:\n%s", out)
	}
	if ids := incidentIDs(t, dir, cfg); len(ids) != 5 {
		t.Fatalf("%d incidents after drop, want 5", len(ids))
	}
}

func mustRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	code, out, errOut := runCVD(t, dir, nil, args...)
	if code != 0 {
		t.Fatalf("cvd %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func smtpSend(addr, from, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail(from, []string{"security@example.org"}, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}
