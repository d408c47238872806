package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// TestOssSecurityPosts is what oss-security's readers get: cvd warns at
// start while no public list is configured; a zero-day's short notice
// goes out before any fix exists; the advisory at release names the
// project and the CVE in its Subject and has the versions, the credits
// and whether distributions were told; a pre-notified incident's post
// carries the patch the distributions got; and seven days after the
// release the team is asked for a withheld exploit.
func TestOssSecurityPosts(t *testing.T) {
	patch, _, _ := gitRepo(t)
	reader := gpgtest.New(t, "Olga Reader", "olga@users.example", "never")
	dir, cfg := initDir(t, "example.org")
	cvdtest.SetConfig(t, cfg, "project", `"libexample"`)
	projectPub, _ := os.ReadFile(filepath.Join(dir, "keys/project.pub.asc"))
	reader.Import(projectPub)
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	addTeam(t, dir, cfg, cora)
	deb := gpgtest.New(t, "Debian Security", "security@debian.example", "never")
	deb.Import(projectPub)
	os.WriteFile(filepath.Join(dir, "keys/debian.asc"), deb.Pub, 0o600)
	cvdtest.AppendConfig(t, cfg, "\n[[embargo.roster]]\nname = \"Debian\"\nemail = \"security@debian.example\"\nkey_file = \"keys/debian.asc\"\n")

	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	if !strings.Contains(s.logs(), "embargo.external is empty while embargo.roster is not") {
		t.Errorf("no warning at start without external lists:\n%s", s.logs())
	}
	s.stop(t)
	cvdtest.SetConfig(t, cfg, "external", `["`+externalList+`"]`)
	s = startCVD(t, t.TempDir(), nil, "--config", cfg)
	if strings.Contains(s.logs(), "embargo.external is empty") {
		t.Errorf("warning with an external list:\n%s", s.logs())
	}
	cli := func(env []string, wantCode int, args ...string) string {
		t.Helper()
		code, out, errOut := runCVD(t, dir, env, append(args, "--config", cfg)...)
		if code != wantCode {
			t.Fatalf("cvd %v: exit %d, want %d\n%s%s", args, code, wantCode, out, errOut)
		}
		return out + errOut
	}
	signedBy := func(raw []byte) string {
		t.Helper()
		signed, status, err := reader.VerifyMultipartSigned(raw)
		if err != nil || !gpgtest.HasStatus(status, "GOODSIG") {
			t.Fatalf("public post not signed by the project key: %v\n%s", err, status)
		}
		return string(signed)
	}

	// A zero-day: the notice goes out with no fix recorded.
	id := namedReport(t, s, dir, "Rita", "rita@reporter.example", "exploited overflow", 1)
	if out := cli(nil, 0, "incident", "confirm", id, "--privacy", "zero-day"); !strings.Contains(out, "public-notice "+id) {
		t.Errorf("confirm of a zero-day does not point to the public notice: %s", out)
	}
	if out := cli(nil, 1, "incident", "public-notice", id); !strings.Contains(out, "title") {
		t.Errorf("public notice without a title: %s", out)
	}
	cli(nil, 0, "incident", "set", id, "title", "Heap overflow in header parsing")
	cli(nil, 0, "incident", "set", id, "description", "A long header overflows a stack buffer; it is exploited.")
	cli(nil, 0, "incident", "versions", id, "libexample", "--introduced", "1.0")
	cli(nil, 0, "incident", "cve", id, "CVE-2026-12345")
	cli(nil, 0, "incident", "credit", id, "Rita Reporter", "--type", "finder")
	cli(nil, 0, "incident", "public-notice", id)
	notice := waitMail(t, dir, externalList, 1)[0]
	if subj := cvdtest.Header(notice, "Subject"); subj != "libexample: Heap overflow in header parsing (CVE-2026-12345)" {
		t.Errorf("public notice Subject: %q", subj)
	}
	if body := signedBy(notice); !strings.Contains(body, "There is no fix yet") || !strings.Contains(body, "libexample from 1.0") {
		t.Errorf("public notice:\n%s", body)
	}
	if out := cli(nil, 1, "incident", "public-notice", id); !strings.Contains(out, "went out") {
		t.Errorf("second public notice: %s", out)
	}
	cli(nil, 0, "incident", "versions", id, "--clear")
	cli(nil, 0, "incident", "versions", id, "libexample", "--introduced", "1.0", "--fixed", "1.2.4")
	cli(nil, 0, "incident", "publish", id)
	adv := waitMail(t, dir, externalList, 2)[1]
	if subj := cvdtest.Header(adv, "Subject"); subj != "libexample: Heap overflow in header parsing (CVE-2026-12345)" {
		t.Errorf("advisory Subject: %q", subj)
	}
	body := signedBy(adv)
	for _, want := range []string{"Affected versions", "Fixed versions", "1.2.4", "Rita Reporter", "Distributions were not notified in advance."} {
		if !strings.Contains(body, want) {
			t.Errorf("advisory lacks %q:\n%s", want, body)
		}
	}

	// A pre-notified incident: the post carries the patch and the date.
	id2 := namedReport(t, s, dir, "Rita", "rita@reporter.example", "second", 2)
	cli(nil, 0, "incident", "confirm", id2)
	cli(nil, 0, "incident", "set", id2, "title", "Out-of-bounds read in the tokenizer")
	cli(nil, 0, "incident", "set", id2, "description", "A crafted token reads past the buffer.")
	cli(nil, 0, "incident", "versions", id2, "libexample", "--introduced", "1.0", "--fixed", "1.2.5")
	date := strings.Fields(strings.SplitN(cli(nil, 0, "incident", "embargo", id2, "--propose"), "embargo "+id2+" ", 2)[1])[0]
	cli(nil, 0, "incident", "embargo", id2, strings.TrimSuffix(date, ")"))
	cli(nil, 0, "incident", "notify", id2, "--attach", patch)
	cli(nil, 0, "incident", "publish", id2, "--now", "--reason", "the fix is public")
	post := waitMail(t, dir, externalList, 3)[2]
	body = signedBy(post)
	if subj := cvdtest.Header(post, "Subject"); subj != "libexample: Out-of-bounds read in the tokenizer" ||
		!strings.Contains(body, "Distributions were notified under embargo on") || !strings.Contains(body, "snprintf(buf, sizeof buf") {
		t.Errorf("post of a pre-notified incident: %q\n%s", subj, body)
	}
	s.stop(t)

	// Seven days later the team is asked for the withheld exploit.
	n := len(outboxMail(t, dir)[cora.Email])
	s = startCVD(t, t.TempDir(), []string{"CVD_CLOCK_OFFSET=169h"}, "--config", cfg)
	var asked int
	waitFor(t, "the exploit reminders", func() bool {
		asked = 0
		for _, m := range outboxMail(t, dir)[cora.Email][n:] {
			if p, _, err := cora.Decrypt(m); err == nil && strings.Contains(p, "withheld exploit or reproducer") {
				asked++
			}
		}
		return asked >= 2
	}, func() string { return outboxListing(t, dir) + s.logs() })
	s.stop(t)
}

// TestIncompleteReleaseWarnedAhead: a day before the date of an incident
// whose advisory lacks its description, the coordinators are told the
// release will be held, once.
func TestIncompleteReleaseWarnedAhead(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	addTeam(t, dir, cfg, cora)
	cvdtest.SetConfig(t, cfg, "external", `["`+externalList+`"]`)
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		code, out, errOut := runCVD(t, dir, nil, append(args, "--config", cfg)...)
		if code != wantCode {
			t.Fatalf("cvd %v: exit %d, want %d\n%s%s", args, code, wantCode, out, errOut)
		}
		return out + errOut
	}
	id := namedReport(t, s, dir, "Rita", "rita@reporter.example", "overflow", 1)
	cli(0, "incident", "confirm", id)
	cli(0, "incident", "set", id, "title", "Overflow in the parser")
	cli(0, "incident", "versions", id, "libexample", "--fixed", "2.0")
	date := time.Now().UTC().Add(72 * time.Hour).Truncate(time.Hour)
	cli(0, "incident", "embargo", id, date.Format("2006-01-02T15:04Z"))
	if out := cli(0, "incident", "notify", id); !strings.Contains(out, "not complete yet") || !strings.Contains(out, "held") {
		t.Errorf("notify of an incomplete advisory: %s", out)
	}
	s.stop(t)
	n := len(outboxMail(t, dir)[cora.Email])
	shift := time.Until(date.Add(-23 * time.Hour)).Round(time.Minute)
	s = startCVD(t, t.TempDir(), []string{"CVD_CLOCK_OFFSET=" + shift.String()}, "--config", cfg)
	var warned int
	waitFor(t, "the warning of a held release", func() bool {
		warned = 0
		for _, m := range outboxMail(t, dir)[cora.Email][n:] {
			if p, _, err := cora.Decrypt(m); err == nil && strings.Contains(p, "will be held") && strings.Contains(p, "Missing: description") {
				warned++
			}
		}
		return warned > 0
	}, func() string { return outboxListing(t, dir) + s.logs() })
	s.stop(t)
	s = startCVD(t, t.TempDir(), []string{"CVD_CLOCK_OFFSET=" + (shift + time.Hour).String()}, "--config", cfg)
	time.Sleep(time.Second)
	s.stop(t)
	warned = 0
	for _, m := range outboxMail(t, dir)[cora.Email][n:] {
		if p, _, err := cora.Decrypt(m); err == nil && strings.Contains(p, "will be held") {
			warned++
		}
	}
	if warned != 1 || len(outboxMail(t, dir)[externalList]) != 0 {
		t.Errorf("%d warnings (want 1), %d posts to the external list (want 0)", warned, len(outboxMail(t, dir)[externalList]))
	}
}
