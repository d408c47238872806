package publish

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/crypto"
)

// memSource is a Source over fixed data. Like a careless store, it returns
// an embargoed and a not-yet-due advisory too; the site must hide them.
type memSource struct {
	advs []Advisory
	keys []PublicKey
}

func (m *memSource) Published(context.Context) ([]Advisory, error) {
	return append([]Advisory(nil), m.advs...), nil
}
func (m *memSource) Keys(context.Context) ([]PublicKey, error) { return m.keys, nil }

var siteNow = testPublished.Add(30 * 24 * time.Hour)

// secret marks everything of the unpublished advisories.
const secretTitle = "SECRET-TITLE use-after-free in the quux decoder"

func testSource(t *testing.T, keys []PublicKey) *memSource {
	t.Helper()
	released := *sampleAdvisory()
	second := *sampleAdvisory()
	second.ID, second.CVE, second.Title = "2026-003", "", "Denial of service through deeply nested frobs"
	second.CVSS = []string{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L"}
	second.Credits = []Credit{{Name: "Jane Researcher", Type: CreditReporter}, {Name: "Bob Builder", Type: CreditFinder}}
	second.Published = testPublished.Add(5 * 24 * time.Hour)
	second.Updated = time.Time{}
	embargoed := *sampleAdvisory()
	embargoed.ID, embargoed.CVE, embargoed.Title, embargoed.Status = "2026-002", "CVE-2026-99999", secretTitle, Embargoed
	embargoed.Credits = []Credit{{Name: "SECRET-CREDIT Mallory"}}
	due := *sampleAdvisory()
	due.ID, due.CVE, due.Title = "2026-004", "CVE-2026-88888", secretTitle+" (due later)"
	due.Published = siteNow.Add(time.Hour)
	due.Credits = []Credit{{Name: "SECRET-CREDIT Later"}}
	return &memSource{advs: []Advisory{released, embargoed, second, due}, keys: keys}
}

func newTestSite(t *testing.T, src Source) *Site {
	t.Helper()
	s, err := NewSite(src, SiteConfig{Project: testProject, Now: func() time.Time { return siteNow }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func get(t *testing.T, h http.Handler, target string) (int, http.Header, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec.Code, rec.Header(), rec.Body.String()
}

func TestZBase32AndWKDPath(t *testing.T) {
	// The example of draft-koch-openpgp-webkey-service: Joe.Doe@Example.ORG.
	if got := WKDPath("Joe.Doe@Example.ORG"); got != "/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q" {
		t.Errorf("WKDPath = %s", got)
	}
	if WKDPath("nobody") != "" {
		t.Error("WKDPath of a malformed address")
	}
}

func TestSecurityTxt(t *testing.T) {
	_, pub, err := crypto.GenerateKey("Example security team", "security@example.org", "")
	if err != nil {
		t.Fatal(err)
	}
	s := newTestSite(t, testSource(t, []PublicKey{{Email: "security@example.org", Key: pub}}))
	code, hdr, body := get(t, s, "/.well-known/security.txt")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("status %d, type %s", code, hdr.Get("Content-Type"))
	}
	fields := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("malformed line %q", line)
		}
		fields[strings.ToLower(k)] = append(fields[strings.ToLower(k)], v)
	}
	for _, k := range []string{"contact", "expires", "encryption", "policy", "acknowledgments", "canonical", "preferred-languages"} {
		if len(fields[k]) == 0 {
			t.Errorf("no %s field:\n%s", k, body)
		}
	}
	if len(fields["expires"]) != 1 {
		t.Fatalf("Expires %d times", len(fields["expires"]))
	}
	exp, err := time.Parse(time.RFC3339, fields["expires"][0])
	if err != nil {
		t.Fatalf("Expires: %v", err)
	}
	if !exp.After(siteNow) || exp.After(siteNow.AddDate(1, 0, 0)) {
		t.Errorf("Expires %v not within a year after the clock's %v", exp, siteNow)
	}
	if fields["contact"][0] != "mailto:security@example.org" || fields["canonical"][0] != "https://example.org/.well-known/security.txt" {
		t.Errorf("contact/canonical: %v %v", fields["contact"], fields["canonical"])
	}
	// Every URL it gives on this site is served.
	for _, k := range []string{"encryption", "policy", "acknowledgments", "canonical"} {
		u := fields[k][0]
		if pth, ok := strings.CutPrefix(u, "https://example.org/security"); ok {
			u = pth
		} else {
			u = strings.TrimPrefix(u, "https://example.org")
		}
		if code, _, _ := get(t, s, u); code != 200 {
			t.Errorf("%s %s: status %d", k, fields[k][0], code)
		}
	}
	// The clock moves, Expires moves with it.
	later := siteNow.AddDate(2, 0, 0)
	s.cfg.Now = func() time.Time { return later }
	_, _, body2 := get(t, s, "/.well-known/security.txt")
	if !strings.Contains(body2, "Expires: "+rfc3339(later.Add(180*24*time.Hour))) {
		t.Errorf("Expires does not follow the clock:\n%s", body2)
	}
}

func TestPagesAndFeed(t *testing.T) {
	s := newTestSite(t, testSource(t, nil))
	code, _, page := get(t, s, "/advisories/2026-001.html")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	for _, want := range []string{
		"<title>LIBEXAMPLE-2026-001: Heap buffer overflow in the frobnicator&#39;s header parser</title>",
		`id="score">8.9 High</span>`, "CVE-2026-12345", "2026-03-03 10:00 UTC", "Out-of-bounds write (CWE-787)",
		"&gt;=1.0.0, &lt;1.2.3; &gt;=1.3.0, &lt;1.3.1", "1.2.3, 1.3.1", "Set max_header_size",
		`<a href="https://jane.example.net">Jane Researcher</a> <span class="muted">(finder)</span>`,
		"Anonymous <span class=\"muted\">(reporter)</span>", "Élodie Fixer", "Attack Vector (AV)", "Network",
		`href="https://git.example.org/libexample/commit/89abcdef">Fix commit</a>`, `href="2026-001.cve.json"`,
		`href="../style.css"`, "https://upstream.example.com/advisories/UP-2026-7",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("advisory page lacks %q", want)
		}
	}
	if code, _, alias := get(t, s, "/advisories/2026-001"); code != 200 || alias != page {
		t.Errorf("page without .html: %d", code)
	}
	_, _, index := get(t, s, "/")
	if !strings.Contains(index, `href="advisories/2026-001.html">LIBEXAMPLE-2026-001</a>`) || !strings.Contains(index, "2026-003") {
		t.Errorf("index lacks the advisories:\n%s", index)
	}
	if strings.Index(index, "2026-003") > strings.Index(index, "2026-001.html") {
		t.Error("index is not newest first")
	}
	_, _, thanks := get(t, s, "/acknowledgements.html")
	for _, want := range []string{"Bob Builder", "Élodie Fixer", "Jane Researcher</a>: <a href=\"advisories/2026-003.html\">LIBEXAMPLE-2026-003</a> <span class=\"muted\">(reporter)</span>, <a href=\"advisories/2026-001.html\">", "And 1 person who asked not to be named"} {
		if !strings.Contains(thanks, want) {
			t.Errorf("acknowledgements lack %q:\n%s", want, thanks)
		}
	}
	if code, _, _ := get(t, s, "/advisories/2026-003.cve.json"); code != 404 {
		t.Errorf("CVE record of an advisory without CVE: %d", code)
	}
	for _, p := range []string{"/advisories/2026-001.cve.json", "/advisories/2026-001.osv.json", "/advisories/2026-001.csaf.json", "/advisories/2026-003.osv.json"} {
		code, hdr, body := get(t, s, p)
		if code != 200 || hdr.Get("Content-Type") != "application/json" || !strings.HasPrefix(body, "{") {
			t.Errorf("%s: %d %s", p, code, hdr.Get("Content-Type"))
		}
	}

	_, hdr, feed := get(t, s, "/advisories.atom")
	if !strings.HasPrefix(hdr.Get("Content-Type"), "application/atom+xml") {
		t.Errorf("feed type %s", hdr.Get("Content-Type"))
	}
	var f atomFeed
	if err := xml.Unmarshal([]byte(feed), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Entries) != 2 || f.Entries[0].Title != "LIBEXAMPLE-2026-003: Denial of service through deeply nested frobs" ||
		f.Entries[1].ID != "https://example.org/security/advisories/2026-001.html" || f.Updated != "2026-03-08T10:00:00Z" {
		t.Errorf("feed: %+v", f)
	}

	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
	_, hdr, _ = get(t, s, "/index.html")
	if !strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("no CSP: %v", hdr)
	}
}

// TestUnpublishedIsUnreachable walks every path of the site and guessed
// URLs: nothing of the embargoed or not-yet-due advisory appears.
func TestUnpublishedIsUnreachable(t *testing.T) {
	_, pub, err := crypto.GenerateKey("Example security team", "security@example.org", "")
	if err != nil {
		t.Fatal(err)
	}
	s := newTestSite(t, testSource(t, []PublicKey{{Email: "security@example.org", Key: pub}}))
	fs, err := s.files(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{"SECRET", "2026-002", "2026-004", "CVE-2026-99999", "CVE-2026-88888", "quux"}
	for p := range fs {
		code, _, body := get(t, s, p)
		if code != 200 {
			t.Errorf("%s: status %d", p, code)
		}
		for _, sec := range secrets {
			if strings.Contains(body, sec) || strings.Contains(p, sec) {
				t.Errorf("%s contains %q", p, sec)
			}
		}
	}
	for _, id := range []string{"2026-002", "2026-004"} {
		for _, suffix := range []string{"", ".html", ".cve.json", ".osv.json", ".csaf.json", ".txt", "/", "/index.html"} {
			for _, p := range []string{"/advisories/" + id + suffix, "/" + id + suffix, "/advisories/LIBEXAMPLE-" + id + suffix} {
				if code, _, body := get(t, s, p); code != 404 || strings.Contains(body, "SECRET") {
					t.Errorf("%s: status %d", p, code)
				}
			}
		}
	}
	dir := t.TempDir()
	if err := s.BuildStatic(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, _ := os.ReadFile(p)
		for _, sec := range secrets {
			if bytes.Contains(data, []byte(sec)) || strings.Contains(p, sec) {
				t.Errorf("static %s contains %q", p, sec)
			}
		}
		return nil
	})
}

func TestBuildStatic(t *testing.T) {
	_, pub, err := crypto.GenerateKey("Example security team", "security@example.org", "")
	if err != nil {
		t.Fatal(err)
	}
	s := newTestSite(t, testSource(t, []PublicKey{{Email: "security@example.org", Key: pub}}))
	dir := t.TempDir()
	if err := s.BuildStatic(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			got = append(got, filepath.ToSlash(rel))
		}
		return err
	})
	sort.Strings(got)
	want := []string{
		".well-known/openpgpkey/hu/" + strings.TrimPrefix(WKDPath("security@example.org"), "/.well-known/openpgpkey/hu/"),
		".well-known/openpgpkey/policy", ".well-known/security.txt",
		".well-known/openpgpkey/example.org/policy",
		strings.TrimPrefix(WKDAdvancedPath("security@example.org"), "/"),
		"acknowledgements.html", "advisories.atom",
		"advisories/2026-001.csaf.json", "advisories/2026-001.cve.json", "advisories/2026-001.html", "advisories/2026-001.osv.json", "advisories/2026-001.txt",
		"advisories/2026-003.csaf.json", "advisories/2026-003.html", "advisories/2026-003.osv.json", "advisories/2026-003.txt",
		"advisories/index.html", "index.html", "policy.html", "style.css",
	}
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("files:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, p := range got {
		data, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, served := get(t, s, "/"+p); served != string(data) {
			t.Errorf("%s differs from what is served", p)
		}
	}
	// The static JSON records validate like the generated ones.
	for kind, url := range map[string]string{"cve": cveSchema, "osv": osvSchema, "csaf": csafSchema} {
		data, _ := os.ReadFile(filepath.Join(dir, "advisories", "2026-001."+kind+".json"))
		if err := validateJSON(t, compileSchema(t, url), kind, data); err != nil {
			t.Errorf("static %s: %v", kind, err)
		}
	}
}

func TestWKDRefusesSecretKeys(t *testing.T) {
	priv, _, err := crypto.GenerateKey("x", "security@example.org", "")
	if err != nil {
		t.Fatal(err)
	}
	s := newTestSite(t, testSource(t, []PublicKey{{Email: "security@example.org", Key: priv}}))
	if code, _, body := get(t, s, "/"); code == 200 || strings.Contains(body, "PRIVATE") {
		t.Errorf("a secret key was accepted: %d", code)
	}
	if err := s.BuildStatic(context.Background(), t.TempDir()); err == nil {
		t.Error("BuildStatic published a secret key")
	}
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
