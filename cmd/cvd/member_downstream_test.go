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

// TestMemberAddDownstreamAfterNotice adds a downstream with 'cvd member
// add --role downstream' to an incident already pre-notified: it gets
// what a late 'incident notify --to' gives (the notice with the files
// sent so far, then the posts since the first notice), decrypted with its
// own key; without a key the addition is refused.
func TestMemberAddDownstreamAfterNotice(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	addTeam(t, dir, cfg, cora)
	projectPub, _ := os.ReadFile(filepath.Join(dir, "keys/project.pub.asc"))
	deb := gpgtest.New(t, "Debian Security", "security@debian.example", "never")
	fed := gpgtest.New(t, "Fedora Security", "secalert@fedora.example", "never")
	for _, u := range []*gpgtest.User{deb, fed} {
		u.Import(projectPub)
	}
	os.WriteFile(filepath.Join(dir, "keys", "debian.asc"), deb.Pub, 0o600)
	fedKey := filepath.Join(t.TempDir(), "fedora.asc")
	os.WriteFile(fedKey, fed.Pub, 0o600)
	cvdtest.AppendConfig(t, cfg, "\n[[embargo.roster]]\nname = \"Debian\"\nemail = \"security@debian.example\"\nkey_file = \"keys/debian.asc\"\n")
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		code, out, errOut := runCVD(t, dir, nil, append(args, "--config", cfg)...)
		if code != wantCode {
			t.Fatalf("cvd %v: exit %d, want %d\n%s%s", args, code, wantCode, out, errOut)
		}
		return out + errOut
	}
	id := report(t, s, dir, "rita@reporter.example", "heap overflow", 1)
	list := "security+" + id + "@example.org"
	cli(0, "incident", "confirm", id)
	cli(0, "incident", "embargo", id, time.Now().UTC().Add(72*time.Hour).Truncate(time.Hour).Format("2006-01-02T15:04Z"))
	fix := filepath.Join(t.TempDir(), "fix.patch")
	os.WriteFile(fix, []byte("--- a/parse.c\n+++ b/parse.c\n@@ -1 +1 @@\n-FIXOLD\n+FIXNEW\n"), 0o600)
	cli(0, "incident", "notify", id, "--to", "Debian", "--attach", fix)
	waitMail(t, dir, deb.Email, 1)
	mail := filepath.Join(t.TempDir(), "post.eml")
	os.WriteFile(mail, []byte(inlineSigned(cora, "From: Cora Coordinator <cora@example.org>\r\nTo: "+list+"\r\nSubject: backports\r\nMessage-ID: <bp@example.org>\r\n",
		"x-list: "+id+"\n\nBACKPORTNOTE: the fix applies to 1.1 as well.\n")), 0o600)
	if out, err := swaks(t, "--server", s.addr, "--from", cora.Email, "--to", list, "--data", "@"+mail); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	waitMail(t, dir, deb.Email, 2)

	// Without a key nothing can be sent: refused, and not added.
	if out := cli(1, "member", "add", id, "security@suse.example", "--role", "downstream"); !strings.Contains(out, "--key") {
		t.Errorf("member add without a key: %s", out)
	}
	if out := cli(0, "member", "list", id); strings.Contains(out, "suse") {
		t.Errorf("a refused downstream is a member:\n%s", out)
	}

	out := cli(0, "member", "add", id, fed.Email, "--role", "downstream", "--key", fedKey, "--name", "Fedora")
	if !strings.Contains(out, "pre-notification") || !strings.Contains(out, "joined late") {
		t.Errorf("member add on a pre-notified incident: %s", out)
	}
	var gotNotice, gotPost bool
	for _, m := range waitMail(t, dir, fed.Email, 2) {
		p, _, err := fed.Decrypt(m)
		if err != nil {
			t.Fatalf("Fedora cannot decrypt: %v", err)
		}
		txt, fs := mailParts(t, p)
		gotNotice = gotNotice || strings.Contains(txt, "Maximum embargo") && strings.Contains(string(fs["fix.patch"]), "FIXNEW")
		gotPost = gotPost || strings.Contains(p, "BACKPORTNOTE")
	}
	if !gotNotice || !gotPost {
		t.Errorf("Fedora added late: notice with the patch %v, earlier post %v\n%s", gotNotice, gotPost, outboxListing(t, dir))
	}
	if o := cli(0, "incident", "show", id); !regexp.MustCompile(`secalert@fedora.example>.*received: notice, fix.patch`).MatchString(o) {
		t.Errorf("show:\n%s", o)
	}
}

// A downstream added with 'member add' before the first notice is told by
// the notify of the whole roster, even when the roster is empty.
func TestMemberAddDownstreamBeforeNotice(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	addTeam(t, dir, cfg, cora)
	projectPub, _ := os.ReadFile(filepath.Join(dir, "keys/project.pub.asc"))
	fed := gpgtest.New(t, "Fedora Security", "secalert@fedora.example", "never")
	fed.Import(projectPub)
	fedKey := filepath.Join(t.TempDir(), "fedora.asc")
	os.WriteFile(fedKey, fed.Pub, 0o600)
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	cli := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCVD(t, dir, nil, append(args, "--config", cfg)...)
		if code != 0 {
			t.Fatalf("cvd %v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out + errOut
	}
	id := report(t, s, dir, "rita@reporter.example", "heap overflow", 1)
	cli("incident", "confirm", id)
	cli("member", "add", id, fed.Email, "--role", "downstream", "--key", fedKey, "--name", "Fedora")
	cli("incident", "embargo", id, time.Now().UTC().Add(72*time.Hour).Truncate(time.Hour).Format("2006-01-02T15:04Z"))
	if out := cli("incident", "notify", id); !strings.Contains(out, "pre-notification") || !strings.Contains(out, fed.Email) {
		t.Errorf("notify with a downstream member and an empty roster: %s", out)
	}
	var gotNotice bool
	for _, m := range waitMail(t, dir, fed.Email, 1) {
		p, _, err := fed.Decrypt(m)
		if err != nil {
			t.Fatalf("Fedora cannot decrypt: %v", err)
		}
		gotNotice = gotNotice || strings.Contains(p, "Maximum embargo")
	}
	if !gotNotice {
		t.Errorf("Fedora, added before the notice, got no pre-notification\n%s", outboxListing(t, dir))
	}
	if o := cli("incident", "show", id); !regexp.MustCompile(`secalert@fedora.example>.*received: notice`).MatchString(o) {
		t.Errorf("show:\n%s", o)
	}
}
