package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// depsTestdata is the real OSV records and lockfiles of package deps.
var depsTestdata = filepath.Join("..", "..", "deps", "testdata")

// copyFile copies a test data file to dst, replacing each old with new
// in pairs.
func copyFile(t *testing.T, src, dst string, replace ...string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(replace); i += 2 {
		if !bytes.Contains(b, []byte(replace[i])) {
			t.Fatalf("%s has no %q", src, replace[i])
		}
		b = bytes.ReplaceAll(b, []byte(replace[i]), []byte(replace[i+1]))
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// depsCLI runs a cvd command with the configuration cfg and returns its
// exit code and output.
func depsCLI(t *testing.T, dir, cfg string, args ...string) (int, string) {
	t.Helper()
	code, out, errOut := runCVD(t, dir, nil, append(args, "--config", cfg)...)
	return code, out + errOut
}

func mustCLI(t *testing.T, dir, cfg string, args ...string) string {
	t.Helper()
	code, out := depsCLI(t, dir, cfg, args...)
	if code != 0 {
		t.Fatalf("cvd %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// incidentFor returns the incident 'cvd deps check' printed for advisory.
func incidentFor(t *testing.T, out, advisory string) string {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(advisory) + `\s+(\d{4}-\d{3})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no incident for %s in:\n%s", advisory, out)
	}
	return m[1]
}

// compileCSAFSchema compiles the CSAF 2.0 schema with the FIRST CVSS
// schemas it references, from local files only.
func compileCSAFSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for u, f := range map[string]string{
		"https://docs.oasis-open.org/csaf/csaf/v2.0/csaf_json_schema.json": "csaf_json_schema.json",
		"https://www.first.org/cvss/cvss-v2.0.json":                        "cvss-v2.0.json",
		"https://www.first.org/cvss/cvss-v3.0.json":                        "cvss-v3.0.json",
		"https://www.first.org/cvss/cvss-v3.1.json":                        "cvss-v3.1.json",
	} {
		data, err := os.ReadFile(filepath.Join(depsTestdata, "schemas", f))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource(u, doc); err != nil {
			t.Fatal(err)
		}
	}
	s, err := c.Compile("https://docs.oasis-open.org/csaf/csaf/v2.0/csaf_json_schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDependencyIncidents is a team whose project ships a real
// Gemfile.lock, checked against real GitHub advisories from a folder of
// OSV records: fixed versions open nothing; the vulnerable versions open
// one incident per advisory, for the team only, and a second check opens
// none; "not affected" publishes a CSAF VEX document that validates
// against the CSAF 2.0 schema; "affected" confirms the incident, whose
// OSV record names the upstream advisory as related.
func TestDependencyIncidents(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	addTeam(t, dir, cfg, cora)
	ents, err := os.ReadDir(filepath.Join(depsTestdata, "advisories"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		copyFile(t, filepath.Join(depsTestdata, "advisories", e.Name()), filepath.Join(dir, "osv", e.Name()))
	}
	cvdtest.SetConfig(t, cfg, "osv_data", `"osv"`)
	cvdtest.SetConfig(t, cfg, "check_every", `"0s"`)
	cvdtest.AppendConfig(t, cfg, "[[components]]\nlockfile = \"app/Gemfile.lock\"\n")
	gemfile := filepath.Join(depsTestdata, "lockfiles", "rubygems-doc2pdf-server", "Gemfile.lock")

	// The project upgraded: every version is the fixed one.
	copyFile(t, gemfile, filepath.Join(dir, "app", "Gemfile.lock"), "rack (2.1.2)", "rack (2.1.4.4)", "puma (3.12.1)", "puma (5.6.8)",
		"nokogiri (1.10.4)", "nokogiri (1.11.0)", "nokogiri (1.10.4-x86-mingw32)", "nokogiri (1.11.0-x86-mingw32)")
	out := mustCLI(t, dir, cfg, "deps", "check")
	if !strings.Contains(out, "against 13 advisories") || !strings.Contains(out, "0 advisories matched; 0 incidents opened") {
		t.Fatalf("fixed versions:\n%s", out)
	}
	if ids := incidentIDs(t, dir, cfg); len(ids) != 0 {
		t.Fatalf("fixed versions opened incidents %v", ids)
	}

	// The real lockfile: rack 2.1.2, puma 3.12.1, nokogiri 1.10.4.
	copyFile(t, gemfile, filepath.Join(dir, "app", "Gemfile.lock"))
	out = mustCLI(t, dir, cfg, "deps", "check")
	if !strings.Contains(out, "3 advisories matched; 3 incidents opened") {
		t.Fatalf("vulnerable versions:\n%s", out)
	}
	rack, puma, noko := incidentFor(t, out, "GHSA-54rr-7fvw-6x8f"), incidentFor(t, out, "GHSA-c2f4-cvqm-65w2"), incidentFor(t, out, "GHSA-vr8q-g5c7-m54m")
	for i := range 2 {
		out = mustCLI(t, dir, cfg, "deps", "check")
		if !strings.Contains(out, "3 advisories matched; 0 incidents opened") || !strings.Contains(out, rack+" (known)") {
			t.Fatalf("check %d again:\n%s", i+2, out)
		}
	}
	if ids := incidentIDs(t, dir, cfg); len(ids) != 3 {
		t.Fatalf("incidents %v, want 3", ids)
	}
	show := mustCLI(t, dir, cfg, "incident", "show", rack)
	for _, want := range []string{"new, public, dependency advisory GHSA-54rr-7fvw-6x8f", "Dependency:    GHSA-54rr-7fvw-6x8f (CVE-2024-26146)", "Shipped:       rack 2.1.2 (RubyGems)",
		"rack (RubyGems): >= 2.1.0, < 2.1.4.4", "Reporter:      none", "Decision:      none yet"} {
		if !strings.Contains(show, want) {
			t.Errorf("incident show lacks %q:\n%s", want, show)
		}
	}

	if report := mustCLI(t, dir, cfg, "incident", "report", rack); !strings.Contains(report, "GHSA-54rr-7fvw-6x8f (undecided)") {
		t.Errorf("the post-mortem does not name the advisory:\n%s", report)
	}

	// The team, and nobody else, is told: one sealed notice per incident.
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	notices := waitMail(t, dir, cora.Email, 3)
	var rackNotice string
	for _, raw := range notices {
		text, _, err := cora.Decrypt(raw)
		if err != nil {
			t.Fatalf("cora cannot decrypt her notice: %v", err)
		}
		if strings.Contains(text, "GHSA-54rr-7fvw-6x8f") {
			rackNotice = text
		}
	}
	for _, want := range []string{"cvd opened incident " + rack, "rack 2.1.2 (RubyGems)", "x-vex: not_affected JUSTIFICATION", "no reporter"} {
		if !strings.Contains(rackNotice, want) {
			t.Errorf("the notice lacks %q:\n%s", want, rackNotice)
		}
	}
	for rcpt := range outboxMail(t, dir) {
		if rcpt != cora.Email {
			t.Errorf("mail to %s; a dependency incident is for the team only\n%s", rcpt, outboxListing(t, dir))
		}
	}

	// Not affected, by the CLI: a CSAF VEX document that validates.
	if code, out := depsCLI(t, dir, cfg, "incident", "vex", rack, "not_affected", "it-is-fine"); code != 1 || !strings.Contains(out, "vulnerable_code_not_in_execute_path") {
		t.Fatalf("an unknown justification: exit %d\n%s", code, out)
	}
	out = mustCLI(t, dir, cfg, "incident", "vex", rack, "not_affected", "vulnerable_code_not_in_execute_path", "We never parse Range headers with rack.")
	if !strings.Contains(out, "not affected by GHSA-54rr-7fvw-6x8f") {
		t.Fatalf("vex:\n%s", out)
	}
	vex := mustCLI(t, dir, cfg, "incident", "export", rack, "--format", "vex")
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(vex))
	if err != nil {
		t.Fatalf("VEX is not JSON: %v\n%s", err, vex)
	}
	if err := compileCSAFSchema(t).Validate(inst); err != nil {
		t.Fatalf("the VEX document does not validate against the CSAF 2.0 schema: %v\n%s", err, vex)
	}
	var doc struct {
		Document struct {
			Category string `json:"category"`
		} `json:"document"`
		Vulnerabilities []struct {
			CVE   string `json:"cve"`
			Flags []struct {
				Label string `json:"label"`
			} `json:"flags"`
			ProductStatus struct {
				KnownNotAffected []string `json:"known_not_affected"`
			} `json:"product_status"`
		} `json:"vulnerabilities"`
	}
	if err := json.Unmarshal([]byte(vex), &doc); err != nil || doc.Document.Category != "csaf_vex" || len(doc.Vulnerabilities) != 1 ||
		doc.Vulnerabilities[0].CVE != "CVE-2024-26146" || doc.Vulnerabilities[0].Flags[0].Label != "vulnerable_code_not_in_execute_path" ||
		len(doc.Vulnerabilities[0].ProductStatus.KnownNotAffected) == 0 {
		t.Fatalf("VEX document: %v %+v", err, doc)
	}
	openvex := mustCLI(t, dir, cfg, "incident", "export", rack, "--format", "openvex")
	if !strings.Contains(openvex, `"status": "not_affected"`) || !strings.Contains(openvex, `"pkg:gem/rack@2.1.2"`) {
		t.Errorf("OpenVEX:\n%s", openvex)
	}
	if !strings.Contains(mustCLI(t, dir, cfg, "incident", "list"), rack+"  rejected") {
		t.Errorf("a not affected incident is rejected")
	}

	// The site lists it and serves the same document.
	base := "http://" + s.webAddr(t)
	_, page := httpGet(t, base, "/")
	if !strings.Contains(page, "GHSA-54rr-7fvw-6x8f") || !strings.Contains(page, "vex/"+rack+".csaf.json") {
		t.Errorf("the site's index does not list the VEX statement:\n%s", page)
	}
	if code, got := httpGet(t, base, "/vex/"+rack+".csaf.json"); code != 200 || got != vex {
		t.Errorf("the site serves another document: %d\n%s", code, got)
	}

	// Affected after all: the incident runs again and the statement is
	// revised, not withdrawn.
	out = mustCLI(t, dir, cfg, "incident", "vex", rack, "affected")
	if !strings.Contains(out, "affected by GHSA-54rr-7fvw-6x8f after all") || !strings.Contains(out, "revision 2") {
		t.Fatalf("vex affected after not_affected:\n%s", out)
	}
	if !strings.Contains(mustCLI(t, dir, cfg, "incident", "list"), rack+"  confirmed") {
		t.Errorf("a reversed incident is not confirmed")
	}
	if show := mustCLI(t, dir, cfg, "incident", "show", rack); !strings.Contains(show, "Decision:      affected (revised") {
		t.Errorf("show after the reversal:\n%s", show)
	}
	revised := mustCLI(t, dir, cfg, "incident", "export", rack, "--format", "vex")
	if inst, err := jsonschema.UnmarshalJSON(strings.NewReader(revised)); err != nil || compileCSAFSchema(t).Validate(inst) != nil {
		t.Fatalf("the revised VEX document does not validate: %v\n%s", err, revised)
	}
	var rdoc struct {
		Document struct {
			Tracking struct {
				Version         string `json:"version"`
				InitialRelease  string `json:"initial_release_date"`
				RevisionHistory []any  `json:"revision_history"`
			} `json:"tracking"`
		} `json:"document"`
		Vulnerabilities []struct {
			ProductStatus map[string][]string `json:"product_status"`
			Remediations  []struct {
				Category   string   `json:"category"`
				ProductIDs []string `json:"product_ids"`
			} `json:"remediations"`
		} `json:"vulnerabilities"`
	}
	if err := json.Unmarshal([]byte(revised), &rdoc); err != nil || rdoc.Document.Tracking.Version != "2" || len(rdoc.Document.Tracking.RevisionHistory) != 2 ||
		len(rdoc.Vulnerabilities) != 1 || len(rdoc.Vulnerabilities[0].ProductStatus["known_affected"]) == 0 ||
		len(rdoc.Vulnerabilities[0].ProductStatus["known_not_affected"]) != 0 || len(rdoc.Vulnerabilities[0].Remediations) != 1 ||
		!slices.Equal(rdoc.Vulnerabilities[0].Remediations[0].ProductIDs, rdoc.Vulnerabilities[0].ProductStatus["known_affected"]) {
		t.Errorf("revised VEX document: %v %+v\n%s", err, rdoc, revised)
	}
	if ov := mustCLI(t, dir, cfg, "incident", "export", rack, "--format", "openvex"); !strings.Contains(ov, `"status": "affected"`) ||
		!strings.Contains(ov, `"action_statement"`) || strings.Contains(ov, `"justification"`) || !strings.Contains(ov, `"version": 2`) {
		t.Errorf("revised OpenVEX:\n%s", ov)
	}
	if _, page := httpGet(t, base, "/"); !strings.Contains(page, "affected (revised") {
		t.Errorf("the site's index does not show the revision:\n%s", page)
	}
	if code, got := httpGet(t, base, "/vex/"+rack+".csaf.json"); code != 200 || got != revised {
		t.Errorf("the site serves another document than the revised one: %d\n%s", code, got)
	}

	// Not affected, by a signed keyword on the incident list.
	projectFpr := regexp.MustCompile(`[0-9A-F]{40}`).FindString(gpgFingerprints(t, filepath.Join(dir, "keys/project.pub.asc")))
	list := "security+" + noko + "@example.org"
	inner := "Content-Type: text/plain; charset=utf-8\r\n\r\nx-list: " + noko + "\r\nx-vex: not_affected component_not_present\r\n"
	post := gpgtest.PGPMIME("From: Cora Coordinator <cora@example.org>\r\nTo: "+list+"\r\nSubject: ...\r\nMessage-ID: <vex1@example.org>\r\n",
		cora.EncryptSign([]byte(inner), projectFpr))
	postFile := filepath.Join(t.TempDir(), "vex.eml")
	os.WriteFile(postFile, []byte(post), 0o600)
	if out, err := swaks(t, "--server", s.addr, "--from", cora.Email, "--to", list, "--data", "@"+postFile); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	waitFor(t, "the keyword's decision", func() bool {
		_, out := depsCLI(t, dir, cfg, "incident", "show", noko)
		return strings.Contains(out, "Decision:      not affected: component_not_present")
	}, s.logs)

	// Affected: the usual flow; the OSV record names the upstream ID.
	mustCLI(t, dir, cfg, "incident", "vex", puma, "affected")
	mustCLI(t, dir, cfg, "incident", "set", puma, "description", "Our bundled puma smuggles requests.")
	mustCLI(t, dir, cfg, "incident", "versions", puma, "doc2pdf-server", "--fixed", "1.1.0")
	if !strings.Contains(mustCLI(t, dir, cfg, "incident", "list"), puma+"  confirmed") {
		t.Errorf("an affected incident is confirmed")
	}
	osv := mustCLI(t, dir, cfg, "incident", "export", puma, "--format", "osv")
	var rec struct {
		Related []string `json:"related"`
	}
	if err := json.Unmarshal([]byte(osv), &rec); err != nil || !slices.Contains(rec.Related, "GHSA-c2f4-cvqm-65w2") {
		t.Errorf("OSV record of the affected incident: %v\n%s", err, osv)
	}
	if code, out := depsCLI(t, dir, cfg, "incident", "export", puma, "--format", "vex"); code == 0 || !strings.Contains(out, "no VEX statement") {
		t.Errorf("an affected incident exported a VEX statement: exit %d\n%s", code, out)
	}
	s.stop(t)

	// A malformed record: named, the others still checked.
	os.WriteFile(filepath.Join(dir, "osv", "broken.json"), []byte(`{"id": "GHSA-xxxx", "affected": [`), 0o600)
	code, out := depsCLI(t, dir, cfg, "deps", "check")
	if code != 1 || !strings.Contains(out, "OSV record broken.json: not JSON") || !strings.Contains(out, "3 advisories matched; 0 incidents opened") {
		t.Errorf("a malformed record: exit %d\n%s", code, out)
	}
}

// osvAPI is an OSV API on a loopback port serving the test records:
// querybatch answers every record naming the queried package, as the
// real API does for a version it cannot place; cvd matches the versions
// itself.
type osvAPI struct {
	mu      sync.Mutex
	records map[string][]byte
	names   map[string][]string // "ecosystem/name" -> IDs
	batches int
	url     string
}

func startOSVAPI(t *testing.T) *osvAPI {
	t.Helper()
	api := &osvAPI{records: map[string][]byte{}, names: map[string][]string{}}
	ents, _ := os.ReadDir(filepath.Join(depsTestdata, "advisories"))
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(depsTestdata, "advisories", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			ID       string `json:"id"`
			Affected []struct {
				Package struct{ Ecosystem, Name string } `json:"package"`
			} `json:"affected"`
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatal(err)
		}
		api.records[rec.ID] = b
		for _, a := range rec.Affected {
			k := a.Package.Ecosystem + "/" + a.Package.Name
			api.names[k] = append(api.names[k], rec.ID)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/querybatch", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Queries []struct {
				Package struct{ Name, Ecosystem string } `json:"package"`
				Version string                           `json:"version"`
			} `json:"queries"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		api.mu.Lock()
		api.batches++
		api.mu.Unlock()
		type vuln struct {
			ID string `json:"id"`
		}
		var res struct {
			Results []struct {
				Vulns []vuln `json:"vulns,omitempty"`
			} `json:"results"`
		}
		for _, q := range req.Queries {
			var r struct {
				Vulns []vuln `json:"vulns,omitempty"`
			}
			for k, ids := range api.names {
				if k == q.Package.Ecosystem+"/"+q.Package.Name || strings.HasPrefix(k, q.Package.Ecosystem+"/"+q.Package.Name+"/") {
					for _, id := range ids {
						r.Vulns = append(r.Vulns, vuln{id})
					}
				}
			}
			res.Results = append(res.Results, r)
		}
		json.NewEncoder(w).Encode(res)
	})
	mux.HandleFunc("GET /v1/vulns/{id}", func(w http.ResponseWriter, r *http.Request) {
		b, ok := api.records[r.PathValue("id")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	api.url = "http://" + ln.Addr().String()
	return api
}

func (a *osvAPI) batchCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.batches
}

// TestDependencyCheckDaily is cvd serve checking a real package-lock.json
// and a component named in cvd.toml against the OSV API once a day: the
// check at start opens one incident per advisory (express, semver; not
// the withdrawn runc advisory), a restart within the day does not check
// again, and the check a day later opens nothing new.
func TestDependencyCheckDaily(t *testing.T) {
	api := startOSVAPI(t)
	dir, cfg := initDir(t, "example.org")
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	addTeam(t, dir, cfg, cora)
	copyFile(t, filepath.Join(depsTestdata, "lockfiles", "npm-notedown-backend", "package-lock.json"), filepath.Join(dir, "web", "package-lock.json"))
	cvdtest.SetConfig(t, cfg, "osv_api", `"`+api.url+`"`)
	cvdtest.AppendConfig(t, cfg, "[[components]]\nlockfile = \"web/package-lock.json\"\n\n"+
		"[[components]]\nname = \"github.com/opencontainers/runc\"\necosystem = \"Go\"\nversion = \"v1.1.12\"\n")

	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	waitMail(t, dir, cora.Email, 2)
	waitFor(t, "the check's log line", func() bool { return strings.Contains(s.logs(), `msg="dependency check"`) }, s.logs)
	if !strings.Contains(s.logs(), "matched=2 opened=2") {
		t.Errorf("the first check:\n%s", s.logs())
	}
	ids := incidentIDs(t, dir, cfg)
	if len(ids) != 2 {
		t.Fatalf("incidents %v, want 2 (express, semver)", ids)
	}
	var advisories []string
	for _, id := range ids {
		show := mustCLI(t, dir, cfg, "incident", "show", id)
		advisories = append(advisories, regexp.MustCompile(`Dependency:\s+(\S+)`).FindStringSubmatch(show)[1])
		if strings.Contains(show, "GHSA-c2qf-rxjj-qqgw") {
			for _, v := range []string{"semver 5.7.1", "semver 7.0.0", "semver 7.3.8"} {
				if !strings.Contains(show, "Shipped:       "+v+" (npm)") {
					t.Errorf("the semver incident lacks %s:\n%s", v, show)
				}
			}
		}
	}
	slices.Sort(advisories)
	if !slices.Equal(advisories, []string{"GHSA-c2qf-rxjj-qqgw", "GHSA-rv95-896h-c2vc"}) {
		t.Errorf("advisories %v", advisories)
	}
	batches := api.batchCount()
	s.stop(t)

	// Restarted the same day: no check.
	s = startCVD(t, t.TempDir(), nil, "--config", cfg)
	waitFor(t, "the next check's time", func() bool { return strings.Contains(s.logs(), `msg="next dependency check"`) }, s.logs)
	s.stop(t)
	if strings.Contains(s.logs(), `msg="dependency check"`) {
		t.Errorf("a restart within the day checked again:\n%s", s.logs())
	}
	if n := api.batchCount(); n != batches {
		t.Errorf("a restart within the day queried the API again (%d -> %d)", batches, n)
	}

	// A day later: checked again, nothing new opened.
	s = startCVD(t, t.TempDir(), []string{"CVD_CLOCK_OFFSET=25h"}, "--config", cfg)
	waitFor(t, "the next day's check", func() bool { return strings.Contains(s.logs(), `msg="dependency check"`) }, s.logs)
	s.stop(t)
	if !strings.Contains(s.logs(), "matched=2 opened=0") || api.batchCount() == batches {
		t.Errorf("the next day's check:\n%s", s.logs())
	}
	if ids := incidentIDs(t, dir, cfg); len(ids) != 2 {
		t.Errorf("incidents after the next day's check: %v", ids)
	}
}
