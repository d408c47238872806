package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// scrape reads /metrics as Prometheus would and returns each sample by
// its name and labels as printed, e.g. `cvd_incidents{state="new"}`.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	code, body := get(t, addr, "/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d\n%s", code, body)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// refuseRcpt tries mail to rcpt and returns the server's reply code.
func refuseRcpt(t *testing.T, addr, rcpt string) int {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("someone@client.example", nil); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt(rcpt, nil)
	se, ok := err.(*smtp.SMTPError)
	if !ok {
		t.Fatalf("RCPT %s: %v, want a refusal", rcpt, err)
	}
	return se.Code
}

// TestMetricsDuringAnIncident scrapes /metrics as an incident runs from
// report to release (with a bounce on the way): the counters and gauges
// move as the operator watching a dashboard expects, and /healthz says ok
// throughout.
func TestMetricsDuringAnIncident(t *testing.T) {
	dir, cfgPath := cvdtest.InitDir(t, "example.org")
	metricsAddr := cvdtest.FreeAddr(t)
	project := filepath.Join(dir, "keys", "project.pub.asc")
	projectPub, _ := os.ReadFile(project)
	person := func(name, email string) *gpgtest.User {
		u := gpgtest.New(t, name, email, "never")
		u.Import(projectPub)
		return u
	}
	cora := person("Cora Coordinator", "cora@example.org")
	debian := person("Debian Security", "team@security.debian.example")
	keyFile := func(u *gpgtest.User) string {
		f := filepath.Join(dir, "keys", strings.Split(u.Email, "@")[0]+".asc")
		os.WriteFile(f, u.Pub, 0o600)
		return f
	}
	cfg, _ := os.ReadFile(cfgPath)
	text := strings.Replace(string(cfg), `# listen = "127.0.0.1:9425"`, `listen = "`+metricsAddr+`"`, 1)
	text += fmt.Sprintf("\n[[embargo.team]]\nname = \"Cora\"\nemail = %q\nkey_file = %q\n\n[[embargo.roster]]\nname = \"Debian\"\nemail = %q\nkey_file = %q\n",
		cora.Email, keyFile(cora), debian.Email, keyFile(debian))
	os.WriteFile(cfgPath, []byte(text), 0o600)

	s := startServer(t, cfgPath)
	box := outbox{t: t, dir: filepath.Join(dir, "outbox")}
	files := func() float64 { return float64(len(cvdtest.Outbox(t, box.dir))) }
	if code, body := get(t, metricsAddr, "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz of a running server: %d %q", code, body)
	}
	m := scrape(t, metricsAddr)
	for _, k := range []string{`cvd_incidents{state="new"}`, `cvd_spool_messages{state="new"}`, `cvd_queue_recipients{state="queued"}`, `cvd_next_deadline_timestamp_seconds`} {
		if v, ok := m[k]; !ok || v != 0 {
			t.Errorf("fresh server: %s = %v (present %v), want 0", k, v, ok)
		}
	}
	if _, ok := m["cvd_release_lag_seconds"]; ok {
		t.Errorf("release lag before any release")
	}

	// Two refusals at RCPT, each counted by its reason.
	if code := refuseRcpt(t, s.Addr, "nobody@example.org"); code != 550 {
		t.Errorf("unknown recipient: %d", code)
	}
	if code := refuseRcpt(t, s.Addr, "victim@elsewhere.example"); code != 550 {
		t.Errorf("relay: %d", code)
	}

	// The report: received, an incident opened, the reporter and Cora told.
	swaks(t, s.Addr, "rita@reporter.example", "security@example.org",
		[]byte("From: Rita <rita@reporter.example>\r\nTo: security@example.org\r\nSubject: crash\r\nMessage-ID: <r1@reporter.example>\r\n\r\nThe parser crashes.\r\n"))
	ack := string(box.wait("rita@reporter.example", 1)[0].raw)
	id := regexp.MustCompile(`incident (\d{4}-\d{3})`).FindStringSubmatch(ack)
	if id == nil {
		t.Fatalf("acknowledgement:\n%s", ack)
	}
	box.wait(cora.Email, 1)
	waitMetric := func(key string, want func(float64) bool) map[string]float64 {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			m := scrape(t, metricsAddr)
			if want(m[key]) {
				return m
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s = %v after 30s", key, m[key])
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	eq := func(n float64) func(float64) bool { return func(v float64) bool { return v == n } }
	waitMetric(`cvd_deliveries_total{result="sent"}`, eq(files()))
	// The attempt is counted before its outcome is committed to the queue.
	m = waitMetric(`cvd_queue_recipients{state="sent"}`, eq(files()))
	want := map[string]float64{
		`cvd_smtp_received_total`:                            1,
		`cvd_smtp_refused_total{reason="unknown_recipient"}`: 1,
		`cvd_smtp_refused_total{reason="relay_denied"}`:      1,
		`cvd_incidents{state="new"}`:                         1,
		`cvd_spool_messages{state="done"}`:                   1,
		`cvd_queue_recipients{state="sent"}`:                 files(),
		`cvd_database_up`:                                    1,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("after the report: %s = %v, want %v", k, m[k], v)
		}
	}

	// Cora confirms, sets the date and pre-notifies by a signed post.
	date := proposeDate(time.Now().UTC().Add(4 * 24 * time.Hour))
	list := "security+" + id[1] + "@example.org"
	post(t, s, cora, list, fmt.Sprintf("x-list: %s\nx-confirm\nx-title: Parser crash\nx-description: An empty file crashes it.\n"+
		"x-cvss: CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H\nx-versions: libexample introduced=1.0 fixed=1.2\nx-embargo: %s\nx-notify\n\nPlease look.\n",
		id[1], date.Format("2006-01-02T15:04Z")), "keywords")
	box.wait(debian.Email, 1)
	m = waitMetric(`cvd_incidents{state="prenotified"}`, eq(1))
	if m[`cvd_smtp_received_total`] != 2 || m[`cvd_incidents{state="new"}`] != 0 {
		t.Errorf("after the post: received %v, new incidents %v", m[`cvd_smtp_received_total`], m[`cvd_incidents{state="new"}`])
	}
	next := time.Unix(int64(m[`cvd_next_deadline_timestamp_seconds`]), 0)
	if !next.After(time.Now()) || next.After(date) {
		t.Errorf("next deadline %v, want after now and no later than the public date %v", next, date)
	}
	waitMetric(`cvd_deliveries_total{result="sent"}`, eq(files()))

	// The reporter's server gives up on the acknowledgement: its bounce
	// (a real Postfix DSN) fails the row.
	var token string
	for _, m := range cvdtest.Outbox(t, box.dir) {
		if m.DeliveredTo == "rita@reporter.example" && token == "" {
			token = m.Token
		}
	}
	returnPath := "security+bounce-" + token + "@example.org"
	sample, err := os.ReadFile(filepath.Join("..", "..", "mailserver", "testdata", "dsn", "postfix", "expired-4.4.1.eml"))
	if err != nil {
		t.Fatal(err)
	}
	swaks(t, s.Addr, "", returnPath, []byte(strings.NewReplacer("security+bounce-3f9a1c2e7b@lists.example.org", returnPath,
		"security+2Bbounce-3f9a1c2e7b@lists.example.org", returnPath, "team@downstream.example", "rita@reporter.example").Replace(string(sample))))
	m = waitMetric(`cvd_bounces_total{result="permanent"}`, eq(1))
	if m[`cvd_queue_recipients{state="failed"}`] != 1 || m[`cvd_smtp_received_total`] != 3 {
		t.Errorf("after the bounce: failed rows %v, received %v", m[`cvd_queue_recipients{state="failed"}`], m[`cvd_smtp_received_total`])
	}
	s.Stop(t)

	// The date passes while cvd is down: at start it releases. The
	// counters start again from zero; the gauges read the database.
	late := 5 * time.Minute
	before := files()
	s = startServer(t, cfgPath, "CVD_CLOCK_OFFSET="+(date.Add(late).Sub(time.Now()).Round(time.Second)).String())
	waitFor(t, box, debian, 1, "lifted")
	m = waitMetric(`cvd_incidents{state="published"}`, eq(1))
	if lag := m[`cvd_release_lag_seconds`]; lag < (late-time.Minute).Seconds() || lag > (late+2*time.Minute).Seconds() {
		t.Errorf("release lag %vs, want about %v (cvd was down at the date)", lag, late)
	}
	m = waitMetric(`cvd_deliveries_total{result="sent"}`, eq(files()-before))
	if m[`cvd_deliveries_total{result="sent"}`] == 0 || m[`cvd_smtp_received_total`] != 0 || m[`cvd_queue_recipients{state="sent"}`]+m[`cvd_queue_recipients{state="failed"}`] != files() {
		t.Errorf("after the release: sent %v (outbox grew by %v), received %v, queue rows sent %v (outbox %v)",
			m[`cvd_deliveries_total{result="sent"}`], files()-before, m[`cvd_smtp_received_total`], m[`cvd_queue_recipients{state="sent"}`], files())
	}
	if code, body := get(t, metricsAddr, "/healthz"); code != 200 {
		t.Errorf("/healthz after the release: %d %q", code, body)
	}
}
