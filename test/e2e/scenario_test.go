package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/dnstest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// TestIncidentFromReportToRelease is one incident as the people involved
// live it, with real clients only: gpg, swaks, the cvd CLI, mbsync.
func TestIncidentFromReportToRelease(t *testing.T) {
	dir := t.TempDir()
	cvd(t, nil, "init", "--dir", dir, "--domain", "example.org")
	project := filepath.Join(dir, "keys", "project.pub.asc")
	projectPub, _ := os.ReadFile(project)
	projectFpr := regexp.MustCompile(`(?m)^fpr:+([0-9A-F]{40}):`).FindStringSubmatch(gpgShow(t, project))[1]

	person := func(name, email string) *gpgtest.User {
		u := gpgtest.New(t, name, email, "never")
		u.Import(projectPub)
		return u
	}
	rita := person("Rita Reporter", "rita@reporter.example")
	cora := person("Cora Coordinator", "cora@example.org")
	finn := person("Finn Fixer", "finn@example.org")
	debian := person("Debian Security", "team@security.debian.example")
	redhat := person("Red Hat Product Security", "secalert@redhat.example")
	ubuntu := person("Ubuntu Security", "security@ubuntu.example")
	sam := person("Sam Subscriber", "sam@users.example")

	keyFile := func(u *gpgtest.User) string {
		f := filepath.Join(dir, "keys", strings.Split(u.Email, "@")[0]+".asc")
		os.WriteFile(f, u.Pub, 0o600)
		return f
	}
	cfgPath := filepath.Join(dir, "cvd.toml")
	cfg, _ := os.ReadFile(cfgPath)
	text := strings.NewReplacer(`listen = "127.0.0.1:2525"`, `listen = "127.0.0.1:0"`, `listen = "127.0.0.1:1143"`, `listen = "127.0.0.1:0"`,
		`listen = "127.0.0.1:8080"`, `listen = "127.0.0.1:0"`,
		// Rita's domain authorises this machine to send its mail (SPF), so
		// she is acknowledged (intake.acknowledge_unauthenticated stays false).
		`# resolver = "127.0.0.1:53"`, `resolver = "`+dnstest.Start(t, `reporter.example. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`).Addr+`"`).Replace(string(cfg))
	text += fmt.Sprintf(`
[[embargo.team]]
name = "Cora Coordinator"
email = "cora@example.org"
key_file = %q

[[embargo.roster]]
name = "Debian"
email = "team@security.debian.example"
key_file = %q

[[embargo.roster]]
name = "Red Hat"
email = "secalert@redhat.example"
key_file = %q

[[embargo.roster]]
name = "Ubuntu"
email = "security@ubuntu.example"
key_file = %q
`, keyFile(cora), keyFile(debian), keyFile(redhat), keyFile(ubuntu))
	text = strings.Replace(text, `project = "example.org"`, `project = "libexample"`, 1)
	text = strings.Replace(text, "external = []", `external = ["oss-security@lists.openwall.example"]`, 1)
	os.WriteFile(cfgPath, []byte(text), 0o600)

	start := time.Now().UTC()
	s := startServer(t, cfgPath)
	box := outbox{t: t, dir: filepath.Join(dir, "outbox")}

	// Sam subscribes to the announce list: double opt-in by mail.
	swaks(t, s.Addr, sam.Email, "announce+subscribe@example.org", []byte("From: Sam <sam@users.example>\r\nTo: announce+subscribe@example.org\r\nSubject: subscribe\r\n\r\n"))
	confirm := regexp.MustCompile(`(?m)^Reply-To: (announce\+confirm-\S+@example\.org)\r?$`).FindSubmatch(box.wait(sam.Email, 1)[0].raw)
	if confirm == nil {
		t.Fatal("no confirmation address in the subscription mail")
	}
	swaks(t, s.Addr, sam.Email, string(confirm[1]), []byte("From: Sam <sam@users.example>\r\nSubject: Re: confirm\r\n\r\nyes\r\n"))
	if welcome := box.wait(sam.Email, 2)[1].raw; !strings.Contains(string(welcome), projectFpr) {
		t.Errorf("welcome mail does not name the project key:\n%s", welcome)
	}

	// 1. Rita reports, encrypted and signed with gpg, her key in Autocrypt.
	report := "Content-Type: text/plain; charset=utf-8\r\n\r\nlibexample 1.4.1: heap overflow in parse_header() with a 70000-byte field.\r\nRSA-TOKEN-7741\r\n"
	autocrypt := "addr=rita@reporter.example; prefer-encrypt=mutual; keydata=" + binaryKey(t, rita)
	swaks(t, s.Addr, rita.Email, "security@example.org", pgpmime(
		"From: Rita Reporter <rita@reporter.example>\r\nTo: security@example.org\r\nSubject: ...\r\nMessage-ID: <report@reporter.example>\r\nAutocrypt: "+autocrypt+"\r\n",
		rita.EncryptSign([]byte(report), projectFpr)))
	ack := readAs(t, rita, box.wait(rita.Email, 1)[0])
	id := regexp.MustCompile(`\b(20\d\d-\d{3})\b`).FindString(ack)
	if id == "" || !strings.Contains(ack, "security+"+id+"@example.org") {
		t.Fatalf("acknowledgement without incident ID or list address:\n%s", ack)
	}
	list := "security+" + id + "@example.org"
	// Cora, of the team, gets the report on the incident list.
	if got := readAs(t, cora, lastOf(box.wait(cora.Email, 1))); !strings.Contains(got, "RSA-TOKEN-7741") || !strings.Contains(got, "spf=pass smtp.mailfrom=rita@reporter.example") || !strings.Contains(got, "reporter authenticated") {
		t.Errorf("Cora's copy of the report:\n%s", got)
	}

	// 2. Cora confirms, sets CVE and CVSS, adds Finn, sets the date and
	// pre-notifies, by one signed mail of keywords.
	date := proposeDate(start.Add(4 * 24 * time.Hour))
	before := len(box.to(cora.Email))
	post(t, s, cora, list, fmt.Sprintf("x-list: %s\nx-confirm\nx-cve: CVE-2026-12345\nx-cvss: CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H\n"+
		"x-title: Heap overflow in header parsing\nx-description: A crafted header overflows a heap buffer.\nx-versions: libexample introduced=1.0 fixed=1.4.2\nx-credit: Rita Reporter (finder)\n"+
		"x-add-member: finn@example.org fixer\nx-embargo: %s\nx-notify\n\nFinn, please prepare the fix.\n%s", id, date.Format("2006-01-02T15:04Z"), finn.Pub), "keywords")
	results := readKind(t, cora, box.wait(cora.Email, before+1)[before:], "Results of your commands")
	for _, want := range []string{"x-confirm", "x-cve", "x-cvss", "x-add-member: ok", "x-embargo", "x-notify"} {
		if !strings.Contains(results, want) {
			t.Errorf("command results lack %q:\n%s", want, results)
		}
	}
	if strings.Contains(results, "refused") {
		t.Fatalf("a command was refused:\n%s", results)
	}

	// 3. Each downstream gets its own pre-notification: readable with its
	// key only, signed by the list, stating the date in UTC, ahead of time.
	for _, d := range []*gpgtest.User{debian, redhat, ubuntu} {
		ms := box.wait(d.Email, 1)
		pre := readAs(t, d, ms[0])
		if !strings.Contains(pre, date.Format("2006-01-02")) || !strings.Contains(pre, "UTC") || !strings.Contains(pre, "CVE-2026-12345") {
			t.Errorf("%s's pre-notification lacks the date in UTC or the CVE:\n%s", d.Email, pre)
		}
		if sent := fileTime(t, ms[0]); date.Sub(sent) < 48*time.Hour {
			t.Errorf("%s notified %v before the date", d.Email, date.Sub(sent))
		}
		for _, other := range []*gpgtest.User{debian, redhat, ubuntu, rita} {
			if other != d {
				if _, _, err := other.Decrypt(ms[0].raw); err == nil {
					t.Errorf("%s can read %s's pre-notification", other.Email, d.Email)
				}
			}
		}
	}

	// 4. Debian acknowledges and asks a question on the list.
	n := len(box.to(cora.Email))
	post(t, s, debian, list, fmt.Sprintf("x-list: %s\nx-ack\n\nWe will ship 1.4.2 on the date. Is 1.3 affected too?\n", id), "ack")
	if got := waitFor(t, box, cora, n, "Is 1.3 affected too?"); !strings.Contains(got, "Signature: good by "+debian.Fpr) || strings.Contains(got, "x-ack") {
		t.Errorf("Debian's question as Cora reads it:\n%s", got)
	}
	if got := waitFor(t, box, debian, 1, "Results of your commands"); !strings.Contains(got, "x-ack:") || strings.Contains(got, "refused") {
		t.Errorf("Debian's acknowledgement:\n%s", got)
	}

	// 5. Finn posts the patch as a PGP/MIME attachment.
	patch := "--- a/parse.c\n+++ b/parse.c\n@@ -1 +1 @@\n-memcpy(buf, field, len);\n+if (len > sizeof buf) return -1; memcpy(buf, field, len);\n"
	inner := "Content-Type: multipart/mixed; boundary=\"P\"\r\n\r\n--P\r\nContent-Type: text/plain\r\n\r\nThe fix for 1.4.2.\r\n" +
		"--P\r\nContent-Type: text/x-diff; name=\"fix.patch\"\r\nContent-Disposition: attachment; filename=\"fix.patch\"\r\n\r\n" +
		strings.ReplaceAll(patch, "\n", "\r\n") + "--P--\r\n"
	n = len(box.to(debian.Email))
	swaks(t, s.Addr, finn.Email, list, pgpmime("From: Finn Fixer <finn@example.org>\r\nTo: "+list+"\r\nSubject: ...\r\nMessage-ID: <patch@example.org>\r\n",
		finn.EncryptSign([]byte(inner), projectFpr)))
	got := waitFor(t, box, debian, n, "fix.patch")
	if !strings.Contains(got, "filename=\"fix.patch\"") || !strings.Contains(got, "if (len > sizeof buf)") || !strings.Contains(got, "Signature: good by "+finn.Fpr) {
		t.Errorf("Debian's copy of the patch:\n%s", got)
	}

	// 6. Nothing public before the date, even with the server restarted
	// ten minutes before it. Red Hat and Ubuntu have not acknowledged:
	// the scheduler's pass at start, at that time, reminds them (24 hours
	// before the date) and releases nothing: its log line and the
	// reminders prove the pass ran.
	s.Stop(t)
	early := date.Add(-10 * time.Minute).Sub(time.Now()).Round(time.Second)
	s = startServer(t, cfgPath, "CVD_CLOCK_OFFSET="+early.String())
	if pass := waitLog(t, s, schedulerRE); pass[1] != "" || pass[2] != "2" {
		t.Fatalf("the scheduler's pass ten minutes before the date released %q and reminded %s, want nothing released and 2 reminded", pass[1], pass[2])
	}
	for _, d := range []*gpgtest.User{redhat, ubuntu} {
		if got := waitFor(t, box, d, 1, "Reminder: embargo ends"); !strings.Contains(got, id) {
			t.Errorf("%s's reminder:\n%s", d.Email, got)
		}
	}
	for _, m := range box.to(debian.Email) {
		if p := readAs(t, debian, m); strings.Contains(p, "Reminder: embargo ends") {
			t.Errorf("Debian, who acknowledged, was reminded:\n%s", p)
		}
	}
	if ms := box.to(sam.Email); len(ms) != 2 {
		t.Errorf("the subscriber got %d messages before the date (want only the two subscription mails)", len(ms))
	}
	if ms := box.to("oss-security@lists.openwall.example"); len(ms) != 0 {
		t.Errorf("the external list got %d messages before the date", len(ms))
	}
	s.Stop(t)

	// 7. The date passes while cvd is down; at start it releases, once.
	late := date.Add(5 * time.Minute).Sub(time.Now()).Round(time.Second)
	s = startServer(t, cfgPath, "CVD_CLOCK_OFFSET="+late.String())
	ann := box.wait(sam.Email, 3)[2]
	signed := verifySigned(t, sam, ann.raw)
	for _, want := range []string{"CVE-2026-12345", "libexample", "1.4.2", "Rita Reporter", "9.8"} {
		if !strings.Contains(signed, want) {
			t.Errorf("announcement lacks %q:\n%s", want, signed)
		}
	}
	if !strings.Contains(string(ann.raw), "List-Unsubscribe-Post: List-Unsubscribe=One-Click") {
		t.Errorf("announcement without one-click unsubscribe")
	}
	ext := box.wait("oss-security@lists.openwall.example", 1)
	verifySigned(t, sam, ext[0].raw)
	if got := waitFor(t, box, rita, 1, "Thank"); !strings.Contains(got, id) {
		t.Errorf("thanks to the reporter:\n%s", got)
	}
	waitFor(t, box, debian, 1, "lifted")
	// A second report comes in that nobody takes.
	n = len(box.to(rita.Email))
	swaks(t, s.Addr, rita.Email, "security@example.org", []byte("From: Rita Reporter <rita@reporter.example>\r\nTo: security@example.org\r\n"+
		"Subject: another bug\r\nMessage-ID: <report2@reporter.example>\r\n\r\nThe lexer loops on a lone quote.\r\n"))
	box.wait(rita.Email, n+1)
	s.Stop(t)

	// Another restart a day later: nothing is released twice. The
	// scheduler's pass at start escalates the second report, untaken for
	// 24 hours: that log line proves the pass ran.
	s = startServer(t, cfgPath, "CVD_CLOCK_OFFSET="+(late+25*time.Hour).String())
	if pass := waitLog(t, s, schedulerRE); pass[1] != "" || pass[3] != "1" {
		t.Fatalf("the scheduler's pass a day after the release released %q and escalated %s, want nothing released and 1 escalated", pass[1], pass[3])
	}
	if n := len(box.to(sam.Email)); n != 3 {
		t.Errorf("the subscriber has %d messages after a second restart, want 3", n)
	}
	if n := len(box.to("oss-security@lists.openwall.example")); n != 1 {
		t.Errorf("the external list got %d announcements", n)
	}

	// 8. Sam and Debian read their archives with mbsync over IMAP.
	samKey := filepath.Join(t.TempDir(), "sam.asc")
	os.WriteFile(samKey, sam.Pub, 0o600)
	cvd(t, nil, "member", "key", sam.Email, "--key", samKey, "--config", cfgPath)
	password := func(u *gpgtest.User) string {
		n := len(box.to(u.Email))
		cvd(t, nil, "member", "password", u.Email, "--config", cfgPath)
		got := waitFor(t, box, u, n, "IMAP password")
		m := regexp.MustCompile(`(?m)^\s*password:\s+(\S+)`).FindStringSubmatch(got)
		if m == nil {
			t.Fatalf("no password in:\n%s", got)
		}
		return m[1]
	}
	cert := filepath.Join(dir, "tls", "cert.pem")
	samDir := filepath.Join(t.TempDir(), "mail")
	if out, err := mbsync(t, s.IMAP, sam.Email, password(sam), cert, samDir); err != nil {
		t.Fatalf("mbsync for Sam: %v\n%s", err, out)
	}
	found := false
	for _, m := range maildir(t, filepath.Join(samDir, "Announce")) {
		if strings.Contains(verifySigned(t, sam, m), "CVE-2026-12345") {
			found = true
		}
	}
	if !found {
		t.Errorf("Sam's Announce folder lacks the announcement")
	}
	debDir := filepath.Join(t.TempDir(), "mail")
	if out, err := mbsync(t, s.IMAP, debian.Email, password(debian), cert, debDir); err != nil {
		t.Fatalf("mbsync for Debian: %v\n%s", err, out)
	}
	posts := maildir(t, filepath.Join(debDir, "Incidents", id))
	if len(posts) == 0 {
		t.Fatalf("Debian's Incidents/%s folder is empty", id)
	}
	sawPatch := false
	for _, m := range posts {
		plain, status, err := debian.Decrypt(m)
		if err != nil || !gpgtest.HasStatus(status, "GOODSIG") {
			t.Errorf("Debian cannot read an archived post: %v", err)
		}
		sawPatch = sawPatch || strings.Contains(plain, "fix.patch")
		if _, _, err := redhat.Decrypt(m); err == nil {
			t.Errorf("Red Hat can read Debian's archived copy")
		}
	}
	if !sawPatch {
		t.Errorf("the patch is not in Debian's archive")
	}
	if _, err := os.Stat(filepath.Join(samDir, "Incidents")); err == nil {
		t.Errorf("Sam, a subscriber, sees incident folders")
	}
	s.Stop(t)
}

func gpgShow(t *testing.T, file string) string {
	home, _ := os.MkdirTemp("", "g")
	defer os.RemoveAll(home)
	out, err := execOut("gpg", "--homedir", home, "--batch", "--with-colons", "--show-keys", file)
	if err != nil {
		t.Fatalf("gpg --show-keys: %v\n%s", err, out)
	}
	return out
}
