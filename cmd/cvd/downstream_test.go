package main

import (
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// mailParts reads a decrypted MIME entity and returns its text and its
// attachments by file name, as a mail client shows them.
func mailParts(t *testing.T, plain string) (text string, files map[string][]byte) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(strings.ReplaceAll(plain, "\r\n", "\n")))
	if err != nil {
		t.Fatalf("read decrypted message: %v\n%s", err, plain)
	}
	files = map[string][]byte{}
	ct, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if !strings.HasPrefix(ct, "multipart/") {
		b, _ := io.ReadAll(m.Body)
		return string(b), files
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read part: %v", err)
		}
		b, _ := io.ReadAll(p)
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "base64") {
			if b, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(b)), "")); err != nil {
				t.Fatalf("part %s: %v", p.FileName(), err)
			}
		}
		if p.FileName() != "" {
			files[p.FileName()] = b
		} else {
			text += string(b)
		}
	}
	return text, files
}

// gitRepo makes a repository with one commit and a fix on top of it,
// written out with git format-patch; it returns the patch and the
// commit the fix applies to.
func gitRepo(t *testing.T) (patch, base, repo string) {
	t.Helper()
	repo = t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Fay Fixer", "GIT_AUTHOR_EMAIL=fay@example.org",
			"GIT_COMMITTER_NAME=Fay Fixer", "GIT_COMMITTER_EMAIL=fay@example.org", "HOME="+repo)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if _, err := exec.LookPath("git"); err != nil {
		cvdtest.SkipOrFail(t, "git is not installed")
	}
	git("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(repo, "parse.c"), []byte("int parse(char *h) {\n\tchar buf[16];\n\tstrcpy(buf, h);\n}\n"), 0o600)
	git("add", "parse.c")
	git("commit", "-q", "-m", "parser")
	base = git("rev-parse", "HEAD")
	os.WriteFile(filepath.Join(repo, "parse.c"), []byte("int parse(char *h) {\n\tchar buf[16];\n\tsnprintf(buf, sizeof buf, \"%s\", h);\n}\n"), 0o600)
	git("commit", "-q", "-am", "parser: bound the header copy")
	git("format-patch", "-q", "-1", "-o", filepath.Join(repo, "out"))
	m, _ := filepath.Glob(filepath.Join(repo, "out", "*.patch"))
	if len(m) != 1 {
		t.Fatalf("format-patch wrote %v", m)
	}
	return m[0], base, repo
}

// TestDownstreamsWithFixAndDistrosList is an incident pre-notified to a
// distribution's team and to the distros list, each reading their own
// mail: the patch travels with the notice and applies with git am; the
// list's copy has "[vs]" and neutral text outside; a distribution told
// later gets the notice, the patch and the posts it missed; a member of
// the list replies and the team reads it, while a stranger's post is
// held; an override past the list's 14 days is refused; everyone is told
// at once when the date is at risk; and the list is not reminded while
// the silent team is.
func TestDownstreamsWithFixAndDistrosList(t *testing.T) {
	patch, base, repo := gitRepo(t)
	dir, cfg := initDir(t, "example.org")
	cvdtest.SetConfig(t, cfg, "project", `"libexample"`)
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	addTeam(t, dir, cfg, cora)
	projectPub, _ := os.ReadFile(filepath.Join(dir, "keys/project.pub.asc"))
	deb := gpgtest.New(t, "Debian Security", "security@debian.example", "never")
	suse := gpgtest.New(t, "SUSE Security", "security@suse.example", "never")
	distros := gpgtest.New(t, "distros list", "distros@vs.openwall.example", "never")
	for _, u := range []*gpgtest.User{deb, suse, distros} {
		u.Import(projectPub)
		name := strings.SplitN(u.Email, "@", 2)[1]
		os.WriteFile(filepath.Join(dir, "keys", name+".asc"), u.Pub, 0o600)
	}
	cvdtest.AppendConfig(t, cfg, "\n[[embargo.roster]]\nname = \"Debian\"\nemail = \"security@debian.example\"\nkey_file = \"keys/debian.example.asc\"\n"+
		"\n[[embargo.roster]]\nname = \"SUSE\"\nemail = \"security@suse.example\"\nkey_file = \"keys/suse.example.asc\"\n"+
		"\n[[embargo.roster]]\nname = \"distros\"\nemail = \"distros@vs.openwall.example\"\nkey_file = \"keys/vs.openwall.example.asc\"\n"+
		"kind = \"list\"\nreplies = \"accept\"\nmembers = [\"@ubuntu.example\"]\n")
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	cli := func(env []string, wantCode int, args ...string) string {
		t.Helper()
		code, out, errOut := runCVD(t, dir, env, append(args, "--config", cfg)...)
		if code != wantCode {
			t.Fatalf("cvd %v: exit %d, want %d\n%s%s", args, code, wantCode, out, errOut)
		}
		return out + errOut
	}
	send := func(from, to, raw string) {
		t.Helper()
		f := filepath.Join(t.TempDir(), "m.eml")
		os.WriteFile(f, []byte(raw), 0o600)
		if out, err := swaks(t, "--server", s.addr, "--from", from, "--to", to, "--data", "@"+f); err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
	}
	id := namedReport(t, s, dir, "Rita", "rita@reporter.example", "heap overflow", 1)
	list := "security+" + id + "@example.org"
	ack := strings.Join(strings.Fields(string(waitMail(t, dir, "rita@reporter.example", 1)[0])), " ")
	if !strings.Contains(ack, "becomes public when the embargo ends") || !strings.Contains(ack, "The rules of distros (14 days) allow no longer embargo") {
		t.Errorf("the reporter's acknowledgement does not state the rules:\n%s", ack)
	}
	cli(nil, 0, "incident", "confirm", id)
	cli(nil, 0, "incident", "set", id, "title", "Heap overflow in header parsing")
	cli(nil, 0, "incident", "set", id, "description", "A long header overflows a stack buffer.")
	cli(nil, 0, "incident", "versions", id, "libexample", "--introduced", "1.0", "--fixed", "1.2.4")
	date := time.Now().UTC().Add(72 * time.Hour).Truncate(time.Hour)
	cli(nil, 0, "incident", "embargo", id, date.Format("2006-01-02T15:04Z"))
	out := cli(nil, 0, "incident", "notify", id, "--to", "Debian,distros", "--attach", patch)
	if !strings.Contains(out, filepath.Base(patch)) {
		t.Errorf("notify: %s", out)
	}

	// Debian's copy: the notice states the maximum, and the patch applies.
	pre := waitMail(t, dir, deb.Email, 1)[0]
	plain, status, err := deb.Decrypt(pre)
	if err != nil || !gpgtest.HasStatus(status, "GOODSIG") {
		t.Fatalf("Debian cannot decrypt its notice: %v\n%s", err, status)
	}
	text, files := mailParts(t, plain)
	if !strings.Contains(text, "Maximum embargo: 14 days") || !strings.Contains(text, "hard limit") ||
		!strings.Contains(text, date.Format("2006-01-02 15:04 UTC")) || strings.Contains(text, "No patch is attached") {
		t.Errorf("Debian's notice:\n%s", text)
	}
	fix := files[filepath.Base(patch)]
	if len(fix) == 0 {
		t.Fatalf("no %s attached to Debian's notice; parts %v", filepath.Base(patch), files)
	}
	clone := t.TempDir()
	applied := filepath.Join(t.TempDir(), "from-mail.patch")
	os.WriteFile(applied, fix, 0o600)
	for _, args := range [][]string{{"clone", "-q", repo, clone}, {"-C", clone, "checkout", "-q", base},
		{"-C", clone, "-c", "user.name=Deb", "-c", "user.email=security@debian.example", "am", "-q", applied}} {
		if o, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, o)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(clone, "parse.c")); !strings.Contains(string(b), "snprintf") {
		t.Errorf("after git am:\n%s", b)
	}

	// The distros list's copy: "[vs]" and neutral text outside.
	dl := waitMail(t, dir, distros.Email, 1)[0]
	outer := cvdtest.Header(dl, "Subject")
	if !strings.HasPrefix(outer, "[vs] ") || strings.Contains(outer, "overflow") || !strings.Contains(outer, "libexample") {
		t.Errorf("outer Subject of the distros copy: %q", outer)
	}
	dplain, _, err := distros.Decrypt(dl)
	dtext, dfiles := mailParts(t, dplain)
	if err != nil || !strings.Contains(dplain, "Subject: [vs] Upcoming libexample security fix release") || len(dfiles[filepath.Base(patch)]) == 0 ||
		!strings.Contains(dtext, "Maximum embargo: 14 days") {
		t.Errorf("distros copy: %v\n%s", err, dplain)
	}
	if o := cli(nil, 0, "incident", "show", id); !strings.Contains(o, "received: notice, "+filepath.Base(patch)) {
		t.Errorf("show:\n%s", o)
	}

	// An override past the list's maximum is refused.
	late := date.Add(20 * 24 * time.Hour)
	if o := cli(nil, 1, "incident", "embargo", id, late.Format("2006-01-02T15:04Z"), "--override", "conference talk"); !strings.Contains(o, "hard limit") {
		t.Errorf("override past 14 days: %s", o)
	}

	// Cora posts; then SUSE joins late and gets notice, patch and post.
	send(cora.Email, list, inlineSigned(cora, "From: Cora Coordinator <cora@example.org>\r\nTo: "+list+"\r\nSubject: backports\r\nMessage-ID: <bp@example.org>\r\n",
		"x-list: "+id+"\n\nBACKPORTNOTE: the fix applies to 1.1 as well.\n"))
	waitMail(t, dir, deb.Email, 2)
	// By mail: x-notify with a reproducer attached.
	nCora0 := len(outboxMail(t, dir)[cora.Email])
	send(cora.Email, list, clearSignedMIME(cora, "From: Cora Coordinator <cora@example.org>\r\nTo: "+list+"\r\nSubject: tell SUSE\r\nMessage-ID: <suse@example.org>\r\n",
		"Content-Type: multipart/mixed; boundary=\"MM\"\r\n\r\n--MM\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nx-list: "+id+"\r\nx-notify: SUSE\r\n"+
			"\r\n--MM\r\nContent-Type: text/plain; name=\"repro.sh\"\r\nContent-Disposition: attachment; filename=\"repro.sh\"\r\n\r\n"+
			"#!/bin/sh\r\nREPRODUCER: printf '%0100d' 0 | ./parse\r\n--MM--\r\n"))
	waitFor(t, "the reply to x-notify", func() bool {
		for _, m := range outboxMail(t, dir)[cora.Email][nCora0:] {
			if p, _, err := cora.Decrypt(m); err == nil && strings.Contains(p, "joined late") {
				return true
			}
		}
		return false
	}, func() string { return outboxListing(t, dir) + s.logs() })
	var gotNotice, gotPost bool
	for _, m := range waitMail(t, dir, suse.Email, 2) {
		p, _, err := suse.Decrypt(m)
		if err != nil {
			t.Fatalf("SUSE cannot decrypt: %v", err)
		}
		txt, fs := mailParts(t, p)
		gotNotice = gotNotice || strings.Contains(txt, "Maximum embargo") && len(fs[filepath.Base(patch)]) > 0 && strings.Contains(string(fs["repro.sh"]), "REPRODUCER")
		gotPost = gotPost || strings.Contains(p, "BACKPORTNOTE")
	}
	if !gotNotice || !gotPost {
		t.Errorf("SUSE joining late: notice with patch and reproducer %v, earlier post %v\n%s", gotNotice, gotPost, outboxListing(t, dir))
	}
	if o := cli(nil, 0, "incident", "show", id); !regexp.MustCompile(`security@suse.example>.*received: notice, `+regexp.QuoteMeta(filepath.Base(patch))+`, repro.sh`).MatchString(o) ||
		!regexp.MustCompile(`security@debian.example>.*received: notice, `+regexp.QuoteMeta(filepath.Base(patch))+`\n`).MatchString(o) {
		t.Errorf("show after x-notify:\n%s", o)
	}

	// A member of the distros list replies; a stranger's post is held.
	nCora := len(outboxMail(t, dir)[cora.Email])
	send("marc@ubuntu.example", list, "From: Marc <marc@ubuntu.example>\r\nTo: "+list+"\r\nCc: distros@vs.openwall.example\r\n"+
		"Subject: Re: embargo\r\nMessage-ID: <marc1@ubuntu.example>\r\n\r\nUBUNTUREPLY: we will have packages ready.\r\n")
	send("eve@evil.example", list, "From: Eve <eve@evil.example>\r\nTo: "+list+"\r\nSubject: hi\r\nMessage-ID: <eve1@evil.example>\r\n\r\nEVEPOST\r\n")
	var sawMarc, sawEve bool
	waitFor(t, "Marc's reply and Eve's held post at Cora", func() bool {
		sawMarc, sawEve = false, false
		for _, m := range outboxMail(t, dir)[cora.Email][nCora:] {
			p, _, err := cora.Decrypt(m)
			if err != nil {
				continue
			}
			sawMarc = sawMarc || strings.Contains(p, "UBUNTUREPLY") && !strings.Contains(p, "[held]")
			sawEve = sawEve || strings.Contains(p, "EVEPOST") && strings.Contains(p, "[held]")
		}
		return sawMarc && sawEve
	}, func() string { return outboxListing(t, dir) + s.logs() })
	var debMarc, debEve bool
	for _, m := range outboxMail(t, dir)[deb.Email] {
		p, _, _ := deb.Decrypt(m)
		debMarc = debMarc || strings.Contains(p, "UBUNTUREPLY")
		debEve = debEve || strings.Contains(p, "EVEPOST")
	}
	if !debMarc || debEve {
		t.Errorf("Debian got Marc's reply %v (want true), Eve's post %v (want false)", debMarc, debEve)
	}
	// The date at risk: everyone is told at once.
	if o := cli(nil, 1, "incident", "at-risk", id); !strings.Contains(o, "say why") {
		t.Errorf("at-risk without a reason: %s", o)
	}
	counts := map[string]int{}
	for _, u := range []*gpgtest.User{cora, deb, suse, distros} {
		counts[u.Email] = len(outboxMail(t, dir)[u.Email])
	}
	cli(nil, 0, "incident", "at-risk", id, "--reason", "RISKREASON the fix landed on a public branch")
	for _, u := range []*gpgtest.User{cora, deb, suse, distros} {
		var told bool
		for _, m := range waitMail(t, dir, u.Email, counts[u.Email]+1)[counts[u.Email]:] {
			p, _, err := u.Decrypt(m)
			told = told || err == nil && strings.Contains(p, "is at risk") && strings.Contains(p, "RISKREASON")
		}
		if !told {
			t.Errorf("%s was not told the date is at risk", u.Email)
		}
	}
	for _, m := range outboxMail(t, dir)[distros.Email] {
		if subj := cvdtest.Header(m, "Subject"); !strings.HasPrefix(subj, "[vs] ") {
			t.Errorf("a copy to the distros list has the outer Subject %q", subj)
		}
	}
	s.stop(t)

	// A day before the date: the silent Debian is reminded, the list not.
	nList := len(outboxMail(t, dir)[distros.Email])
	nDeb := len(outboxMail(t, dir)[deb.Email])
	shift := time.Until(date.Add(-23 * time.Hour)).Round(time.Minute)
	s = startCVD(t, t.TempDir(), []string{"CVD_CLOCK_OFFSET=" + shift.String()}, "--config", cfg)
	rem := waitMail(t, dir, deb.Email, nDeb+1)[nDeb]
	if p, _, err := deb.Decrypt(rem); err != nil || !strings.Contains(p, "Reminder") {
		t.Errorf("Debian's reminder: %v\n%s", err, p)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(outboxMail(t, dir)[distros.Email]); n != nList {
		t.Errorf("the distros list got %d more messages after the reminders, want none", n-nList)
	}
	s.stop(t)
}
