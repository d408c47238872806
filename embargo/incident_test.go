package embargo_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/gpgtest"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/store"
)

const secret = "SECRET-DETAIL: overflow in parse_header() at offset 0x41"

// report is a reporter's PGP/MIME report encrypted to the project key,
// signed, with their public key attached inside the encryption.
func (w *world) report(u *gpgtest.User, msgID string) string {
	inner := "Content-Type: multipart/mixed; boundary=\"in\"\r\n\r\n" +
		"--in\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + secret + "\r\n" +
		"--in\r\nContent-Type: application/pgp-keys; name=\"key.asc\"\r\nContent-Disposition: attachment\r\n\r\n" +
		strings.ReplaceAll(string(u.Pub), "\n", "\r\n") + "\r\n--in--\r\n"
	return gpgtest.PGPMIME("From: "+u.Name+" <"+u.Email+">\r\nTo: security@"+domain+"\r\nSubject: ...\r\nMessage-ID: "+msgID+"\r\n",
		u.EncryptSign([]byte(inner), w.key.Fingerprint()))
}

// TestFullIncident follows one incident from the reporter's encrypted mail
// to the release, checking what each party gets, decrypted with their own
// key.
func TestFullIncident(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	rita := w.person("Rita Reporter", "rita@reporter.example")
	cora := w.person("Cora Coordinator", "cora@example.org")
	debian := w.person("Debian Security", "team@security.debian.example")
	redhat := w.person("Red Hat Product Security", "secalert@redhat.example")
	sam := w.person("Sam Subscriber", "sam@users.example")
	w.addTeam(cora)
	w.addRoster(debian)
	w.addRoster(redhat)
	if _, err := w.svc.AddMember(ctx, lists.AnnounceList, lists.NewMember{Email: sam.Email, Role: lists.RoleSubscriber, Actor: "test"}); err != nil {
		t.Fatal(err)
	}

	// 1. The report: an incident, its list, the reporter's key pinned, an
	// encrypted acknowledgement; the team gets the report.
	w.deliver(rita.Email, "security@"+domain, w.report(rita, "<report-1@reporter.example>"))
	in := w.only()
	id := in.ID
	if !regexp.MustCompile(`^\d{4}-001$`).MatchString(id) || in.State != store.IncidentNew || in.Reporter != rita.Email {
		t.Fatalf("incident = %+v", in.Incident)
	}
	if w.spoolState(1) != store.SpoolDone {
		t.Errorf("report's spool row is %s", w.spoolState(1))
	}
	q := w.queue()
	ack := one(t, q, rita.Email, "ack")
	if !strings.Contains(string(ack.raw), "Auto-Submitted: auto-replied") || strings.Contains(string(ack.raw), "Auto-Submitted: auto-generated") {
		t.Errorf("ack is not marked auto-replied:\n%s", ack.raw[:400])
	}
	ackText := w.decrypt(rita, ack)
	for _, want := range []string{"incident " + id, "security+" + id + "@" + domain, "We have your OpenPGP key", "48 hours", "14 days"} {
		if !strings.Contains(ackText, want) {
			t.Errorf("ack lacks %q:\n%s", want, ackText)
		}
	}
	if strings.Contains(ackText, "SECRET-DETAIL") {
		t.Error("ack quotes the report")
	}
	reportCopy := one(t, q, cora.Email, "post")
	if got := w.decrypt(cora, reportCopy); !strings.Contains(got, secret) || !strings.Contains(got, "Signature: good by "+rita.Fpr) {
		t.Errorf("coordinator's copy of the report:\n%s", got)
	}
	if len(find(q, rita.Email, "post"))+len(find(q, rita.Email, "receipt")) != 0 {
		t.Error("the reporter got their report back or a second receipt")
	}
	for _, m := range q {
		if bytes.Contains(m.raw, []byte("SECRET-DETAIL")) {
			t.Errorf("%s to %s carries the report in plain text", m.kind, m.rcpt)
		}
	}

	// A reply to the acknowledgement, sent to security@, lands in the same
	// incident.
	ackID := regexp.MustCompile(`(?m)^Message-Id: (<[^>]+>)`).FindSubmatch(ack.raw)
	if ackID == nil {
		t.Fatalf("ack has no Message-Id:\n%s", ack.raw)
	}
	n := len(w.queue())
	reply := gpgtest.PGPMIME("From: Rita Reporter <rita@reporter.example>\r\nTo: security@"+domain+"\r\nSubject: ...\r\nMessage-ID: <reply-1@reporter.example>\r\nIn-Reply-To: "+string(ackID[1])+"\r\n",
		rita.EncryptSign([]byte("Content-Type: text/plain\r\n\r\nI can also crash it remotely.\r\n"), w.key.Fingerprint()))
	w.deliver(rita.Email, "security@"+domain, reply)
	if ins, _ := w.desk.List(ctx); len(ins) != 1 {
		t.Fatalf("the reply opened a new incident")
	}
	if got := w.decrypt(cora, one(t, w.since(n), cora.Email, "post")); !strings.Contains(got, "crash it remotely") {
		t.Errorf("the reply did not reach the team:\n%s", got)
	}

	// 2. Triage by signed keywords; a bad date is refused and changes nothing.
	bad := w.clock.Now().Add(24 * time.Hour).Format("2006-01-02T15:04Z")
	res := w.command(cora, id, "x-embargo: "+bad)
	if !strings.Contains(res, "refused") || !strings.Contains(res, "less than 48 hours") {
		t.Errorf("a date 24h ahead was not refused:\n%s", res)
	}
	if w.incident(id).EmbargoAt != (time.Time{}) {
		t.Error("the refused date was recorded")
	}
	date := w.clock.Now().Add(72 * time.Hour).Truncate(time.Hour)
	n = len(w.queue())
	res = w.command(cora, id, "x-confirm", "x-cve: CVE-2026-31337", "x-cvss: CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
		"x-title: Heap overflow in header parsing", "x-description: A crafted header overflows a heap buffer.",
		"x-versions: libexample introduced=1.0 fixed=1.4.2", "x-credit: Rita Reporter (finder)",
		"x-embargo: "+date.Format("2006-01-02T15:04Z"))
	for _, want := range []string{"confirmed (private)", "CVE-2026-31337", "9.8", "public date"} {
		if !strings.Contains(res, want) {
			t.Errorf("command reply lacks %q:\n%s", want, res)
		}
	}
	in = w.incident(id)
	if in.State != store.IncidentConfirmed || in.Facts.CVE != "CVE-2026-31337" || !in.EmbargoAt.Equal(date) || in.AckedAt.IsZero() {
		t.Fatalf("after the keywords: %+v %+v", in.Incident, in.Facts)
	}
	if got := w.decrypt(rita, one(t, w.since(n), rita.Email, "triage")); !strings.Contains(got, "confirmed") {
		t.Errorf("reporter's triage notice:\n%s", got)
	}

	// 3. Pre-notification: each downstream gets its own encrypted copy,
	// stating the date in UTC.
	n = len(w.queue())
	res = w.command(cora, id, "x-notify")
	if !strings.Contains(res, "pre-notification") {
		t.Errorf("notify reply:\n%s", res)
	}
	after := w.since(n)
	pDebian := one(t, after, debian.Email, "prenotify")
	pRedhat := one(t, after, redhat.Email, "prenotify")
	for u, m := range map[*gpgtest.User]queued{debian: pDebian, redhat: pRedhat} {
		got := w.decrypt(u, m)
		for _, want := range []string{"Subject: [vs] ", date.Format("2006-01-02 15:04 UTC"), "CVE-2026-31337", "x-ack", "Heap overflow in header parsing"} {
			if !strings.Contains(got, want) {
				t.Errorf("%s's pre-notification lacks %q:\n%s", u.Email, want, got)
			}
		}
		if strings.Contains(string(m.raw), "CVE-2026") {
			t.Errorf("pre-notification to %s shows the CVE outside the encryption", u.Email)
		}
	}
	if _, _, err := debian.Decrypt(pRedhat.raw); err == nil {
		t.Error("Debian can decrypt Red Hat's copy")
	}
	if w.incident(id).State != store.IncidentPrenotified {
		t.Fatalf("state after notify: %s", w.incident(id).State)
	}

	// 4. Debian acknowledges; Red Hat is silent and is reminded 24h ahead.
	if res := w.command(debian, id, "x-ack"); !strings.Contains(res, "acknowledgement recorded") {
		t.Errorf("x-ack reply:\n%s", res)
	}
	w.clock.Set(date.Add(-25 * time.Hour))
	n = len(w.queue())
	if tk, err := w.desk.RunDue(ctx); err != nil || tk.Reminded != 0 || len(tk.Released) != 0 {
		t.Fatalf("25h before: %+v %v", tk, err)
	}
	w.clock.Set(date.Add(-24 * time.Hour))
	if tk, err := w.desk.RunDue(ctx); err != nil || tk.Reminded != 1 {
		t.Fatalf("24h before: %+v %v", tk, err)
	}
	if got := w.decrypt(redhat, one(t, w.since(n), redhat.Email, "reminder")); !strings.Contains(got, date.Format("2006-01-02 15:04 UTC")) {
		t.Errorf("reminder:\n%s", got)
	}
	if len(find(w.since(n), debian.Email, "reminder")) != 0 {
		t.Error("Debian acknowledged and was reminded all the same")
	}
	if tk, _ := w.desk.RunDue(ctx); tk.Reminded != 0 {
		t.Error("reminded twice")
	}

	// 5. Never early: a minute before, nothing public.
	w.clock.Set(date.Add(-time.Minute))
	if tk, err := w.desk.RunDue(ctx); err != nil || len(tk.Released) != 0 {
		t.Fatalf("a minute early: %+v %v", tk, err)
	}
	if len(find(w.queue(), "", "announce")) != 0 {
		t.Fatal("announcement queued before the date")
	}

	// 6. The date: released once, with every copy.
	w.clock.Set(date)
	n = len(w.queue())
	tk, err := w.desk.RunDue(ctx)
	if err != nil || len(tk.Released) != 1 {
		t.Fatalf("at the date: %+v %v", tk, err)
	}
	out := w.since(n)
	for _, m := range []queued{one(t, out, sam.Email, "announce"), one(t, out, "oss-security@lists.example.net", "announce")} {
		if !strings.Contains(string(m.raw), "multipart/signed") || strings.Contains(string(m.raw), "multipart/encrypted") {
			t.Errorf("announcement to %s is not a clear-signed message", m.rcpt)
		}
		verifyClearSigned(t, sam, m.raw, w.key.Fingerprint())
		for _, want := range []string{"CVE-2026-31337", "Heap overflow in header parsing", "Rita Reporter", "1.4.2"} {
			if !strings.Contains(string(m.raw), want) {
				t.Errorf("announcement to %s lacks %q", m.rcpt, want)
			}
		}
	}
	for _, u := range []*gpgtest.User{cora, debian, redhat, rita} {
		if got := w.decrypt(u, one(t, out, u.Email, "lifted")); !strings.Contains(got, "embargo on incident "+id+" ended") {
			t.Errorf("%s's lifted notice:\n%s", u.Email, got)
		}
	}
	if got := w.decrypt(rita, one(t, out, rita.Email, "thanks")); !strings.Contains(got, "Rita Reporter") {
		t.Errorf("thanks:\n%s", got)
	}
	in = w.incident(id)
	if in.State != store.IncidentPublished || !in.PublishedAt.Equal(date) {
		t.Errorf("after release: %+v", in.Incident)
	}
	// Once only.
	w.clock.Advance(time.Hour)
	if tk, _ := w.desk.RunDue(ctx); len(tk.Released) != 0 {
		t.Error("released twice")
	}
	if res := w.command(cora, id, "x-publish"); !strings.Contains(res, "already published") {
		t.Errorf("x-publish after the release:\n%s", res)
	}
	if got := len(find(w.queue(), "", "announce")); got != 2 {
		t.Errorf("%d announcement copies, want 2", got)
	}
	pub, err := w.desk.Published(ctx)
	if err != nil || len(pub) != 1 || pub[0].CVE != "CVE-2026-31337" || pub[0].Credits[0].Name != "Rita Reporter" {
		t.Errorf("published advisories: %+v %v", pub, err)
	}

	// 7. The post-mortem.
	var rep bytes.Buffer
	if err := w.desk.Report(ctx, id, &rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Notice given to downstreams        2d 23h", "Downstream acknowledgements        1 of 2", "acknowledged after", "silent, reminded",
		"[sig " + cora.Fpr + "]", "published"} {
		if !strings.Contains(rep.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, rep.String())
		}
	}
	if strings.Contains(rep.String(), "crafted header") {
		t.Error("the timeline holds the description text")
	}
}

// verifyClearSigned checks a PGP/MIME clear-signed message with gpg.
func verifyClearSigned(t *testing.T, u *gpgtest.User, raw []byte, fpr string) {
	t.Helper()
	m := regexp.MustCompile(`boundary="?([^";\r\n]+)"?`).FindSubmatch(raw)
	if m == nil {
		t.Fatalf("no boundary:\n%s", raw)
	}
	b := "--" + string(m[1])
	parts := strings.Split(string(raw), b)
	if len(parts) < 4 {
		t.Fatalf("multipart/signed with %d parts", len(parts))
	}
	signed := strings.TrimPrefix(parts[1], "\r\n")
	signed = strings.TrimSuffix(signed, "\r\n")
	sig := parts[2][strings.Index(parts[2], "-----BEGIN PGP SIGNATURE-----"):]
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "data"), []byte(signed), 0o600)
	os.WriteFile(filepath.Join(dir, "sig.asc"), []byte(sig), 0o600)
	_, status, err := u.Try(nil, "--verify", filepath.Join(dir, "sig.asc"), filepath.Join(dir, "data"))
	if err != nil || !gpgtest.HasStatus(status, "GOODSIG") || !strings.Contains(status, "VALIDSIG "+fpr) {
		t.Errorf("announcement signature does not verify: %v\n%s", err, status)
	}
}
