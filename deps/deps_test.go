package deps

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

func advisories(t *testing.T) []*Advisory {
	t.Helper()
	advs, bad, err := Load(filepath.Join("testdata", "advisories"))
	if err != nil || bad != nil {
		t.Fatalf("load: %v %v", err, bad)
	}
	if len(advs) != 13 {
		t.Fatalf("%d advisories, want 13", len(advs))
	}
	return advs
}

func lockfile(t *testing.T, path string) []Component {
	t.Helper()
	cs, err := ReadLockfile(context.Background(), filepath.Join("testdata", "lockfiles", path))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// found returns "ADVISORY name@version" for every match.
func found(ms []Match) []string {
	var out []string
	for _, m := range ms {
		for _, c := range m.Components {
			out = append(out, m.Advisory.ID+" "+c.Name+"@"+c.Version)
		}
	}
	sort.Strings(out)
	return out
}

// TestMatchingTable checks the matching table of testdata/README.md:
// every lockfile against every advisory.
func TestMatchingTable(t *testing.T) {
	advs := advisories(t)
	for _, tc := range []struct {
		lockfile string
		want     []string
	}{
		{"rubygems-doc2pdf-server/Gemfile.lock", []string{
			"GHSA-54rr-7fvw-6x8f rack@2.1.2", "GHSA-c2f4-cvqm-65w2 puma@3.12.1", "GHSA-vr8q-g5c7-m54m nokogiri@1.10.4"}},
		{"npm-notedown-backend/package-lock.json", []string{
			"GHSA-c2qf-rxjj-qqgw semver@5.7.1", "GHSA-c2qf-rxjj-qqgw semver@7.0.0", "GHSA-c2qf-rxjj-qqgw semver@7.3.8",
			"GHSA-rv95-896h-c2vc express@4.18.2"}},
		{"pypi-netflix-meta-scraper/requirements.txt", []string{"GHSA-9wx4-h78v-vm56 requests@2.31.0"}},
		{"go-web-crawler/go.mod", []string{"GHSA-4v7x-pqxf-cx7m golang.org/x/net@0.20.0"}},
		// go.sum lists x/net only for its go.mod hash: not a dependency.
		{"go-gin-demo/go.sum", []string{"GHSA-8c26-wmh5-6g9v golang.org/x/crypto@0.0.0-20200622213623-75b288015ac9"}},
		{"cargo-mal/Cargo.lock", []string{"GHSA-m5pq-gvj9-9vr8 regex@1.3.1"}},
	} {
		t.Run(tc.lockfile, func(t *testing.T) {
			got := found(MatchAll(lockfile(t, tc.lockfile), advs))
			if !slices.Equal(got, tc.want) {
				t.Errorf("matches:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestMatchingBoundaries(t *testing.T) {
	advs := advisories(t)
	for _, tc := range []struct {
		c    Component
		want []string
	}{
		// The fixed version is not affected (fixed is exclusive).
		{Component{Ecosystem: "PyPI", Name: "requests", Version: "2.32.2"}, nil},
		{Component{Ecosystem: "PyPI", Name: "requests", Version: "2.31.0"}, []string{"GHSA-9wx4-h78v-vm56 requests@2.31.0"}},
		// last_affected is inclusive.
		{Component{Ecosystem: "PyPI", Name: "py", Version: "1.11.0"}, []string{"GHSA-w596-4wvx-j9j6 py@1.11.0"}},
		{Component{Ecosystem: "PyPI", Name: "py", Version: "1.11.1"}, nil},
		// A withdrawn advisory matches nothing.
		{Component{Ecosystem: "Go", Name: "github.com/opencontainers/runc", Version: "v1.1.12"}, nil},
		// Four-part RubyGems versions; a version between two ranges.
		{Component{Ecosystem: "RubyGems", Name: "rack", Version: "2.2.8.1"}, nil},
		{Component{Ecosystem: "RubyGems", Name: "rack", Version: "3.0.9"}, []string{"GHSA-54rr-7fvw-6x8f rack@3.0.9"}},
		{Component{Ecosystem: "RubyGems", Name: "rails", Version: "5.1.7"}, nil},
		// npm prerelease range.
		{Component{Ecosystem: "npm", Name: "express", Version: "5.0.0-beta.1"}, []string{"GHSA-rv95-896h-c2vc express@5.0.0-beta.1"}},
		{Component{Ecosystem: "npm", Name: "express", Version: "4.19.2"}, nil},
		// Another ecosystem's package of the same name does not match.
		{Component{Ecosystem: "npm", Name: "requests", Version: "2.0.0"}, nil},
	} {
		got := found(MatchAll([]Component{tc.c}, advs))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.c, got, tc.want)
		}
	}
}

func TestMalformedRecords(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"truncated", `{"id": "GHSA-x", "affected": [`, "not JSON"},
		{"not an object", `[1, 2]`, "not an OSV record"},
		{"no id", `{"summary": "x"}`, "id"},
		{"wrong type", `{"id": "X-1", "affected": "rack"}`, "affected"},
		{"bad range", `{"id": "X-1", "affected": [{"package": {"ecosystem": "npm", "name": "a"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"fixed": "1.0"}]}]}]}`, "no introduced"},
		{"two values", `{"id": "X-1"} {"id": "X-2"}`, "more than one"},
	} {
		_, err := ParseAdvisory([]byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	// A folder with one bad record: the others load, the bad one is named.
	dir := t.TempDir()
	good, _ := os.ReadFile(filepath.Join("testdata", "advisories", "GHSA-m5pq-gvj9-9vr8.json"))
	os.WriteFile(filepath.Join(dir, "good.json"), good, 0o600)
	os.WriteFile(filepath.Join(dir, "bad.json"), good[:100], 0o600)
	advs, bad, err := Load(dir)
	var re *RecordError
	if err != nil || len(advs) != 1 || !errors.As(bad, &re) || re.File != "bad.json" {
		t.Fatalf("load: %d advisories, bad %v, err %v", len(advs), bad, err)
	}
}

func TestLoadZip(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	ents, _ := os.ReadDir(filepath.Join("testdata", "advisories"))
	for _, e := range ents {
		data, _ := os.ReadFile(filepath.Join("testdata", "advisories", e.Name()))
		w, _ := zw.Create(e.Name())
		w.Write(data)
	}
	zw.Close()
	p := filepath.Join(t.TempDir(), "all.zip")
	os.WriteFile(p, buf.Bytes(), 0o600)
	advs, bad, err := Load(p)
	if err != nil || bad != nil || len(advs) != 13 {
		t.Fatalf("zip: %d advisories, %v %v", len(advs), bad, err)
	}
}

func compileCSAF(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for u, f := range map[string]string{
		"https://docs.oasis-open.org/csaf/csaf/v2.0/csaf_json_schema.json": "csaf_json_schema.json",
		"https://www.first.org/cvss/cvss-v2.0.json":                        "cvss-v2.0.json",
		"https://www.first.org/cvss/cvss-v3.0.json":                        "cvss-v3.0.json",
		"https://www.first.org/cvss/cvss-v3.1.json":                        "cvss-v3.1.json",
	} {
		data, err := os.ReadFile(filepath.Join("testdata", "schemas", f))
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

func TestCSAFVEXValidates(t *testing.T) {
	s := &Statement{ID: "EXAMPLE-VEX-2026-001", Publisher: "The Example Project", Namespace: "https://example.org/security",
		Product: "libexample", Contact: "security@example.org", URL: "https://example.org/security/vex/2026-001.csaf.json",
		Advisory: "GHSA-54rr-7fvw-6x8f", Aliases: []string{"CVE-2024-26146"}, Summary: "Possible Denial of Service Vulnerability in Rack Header Parsing",
		Components:    []Component{{Ecosystem: "RubyGems", Name: "rack", Version: "2.1.2"}},
		Justification: "vulnerable_code_not_in_execute_path", Impact: "libexample never parses HTTP headers with rack.",
		Date: time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)}
	doc, err := s.CSAF()
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := compileCSAF(t).Validate(inst); err != nil {
		t.Fatalf("CSAF VEX does not validate: %v\n%s", err, doc)
	}
	ov, err := s.OpenVEX()
	if err != nil || !bytes.Contains(ov, []byte(`"pkg:gem/rack@2.1.2"`)) || !bytes.Contains(ov, []byte(`"status": "not_affected"`)) {
		t.Fatalf("OpenVEX: %v\n%s", err, ov)
	}

	// Revised: affected after all, version 2, still valid CSAF, every
	// affected product with an action statement.
	r := *s
	r.Revised = s.Date.Add(48 * time.Hour)
	doc, err = r.CSAF()
	if err != nil {
		t.Fatal(err)
	}
	if inst, err = jsonschema.UnmarshalJSON(bytes.NewReader(doc)); err != nil {
		t.Fatal(err)
	}
	if err := compileCSAF(t).Validate(inst); err != nil {
		t.Fatalf("revised CSAF VEX does not validate: %v\n%s", err, doc)
	}
	for _, want := range []string{`"known_affected"`, `"category": "none_available"`, `"version": "2"`, `"initial_release_date": "2026-11-30T10:00:00Z"`,
		`"current_release_date": "2026-12-02T10:00:00Z"`, "is affected by GHSA-54rr-7fvw-6x8f"} {
		if !bytes.Contains(doc, []byte(want)) {
			t.Errorf("revised CSAF lacks %s\n%s", want, doc)
		}
	}
	if bytes.Contains(doc, []byte("known_not_affected")) || bytes.Contains(doc, []byte(`"flags"`)) {
		t.Errorf("revised CSAF still says not affected\n%s", doc)
	}
	ov, err = r.OpenVEX()
	if err != nil || !bytes.Contains(ov, []byte(`"status": "affected"`)) || !bytes.Contains(ov, []byte(`"action_statement"`)) ||
		bytes.Contains(ov, []byte(`"justification"`)) || !bytes.Contains(ov, []byte(`"last_updated": "2026-12-02T10:00:00Z"`)) {
		t.Fatalf("revised OpenVEX: %v\n%s", err, ov)
	}
	r.Revised = s.Date.Add(-time.Hour)
	if _, err := r.CSAF(); err == nil {
		t.Error("a statement revised before it was made was written")
	}

	s.Justification = "it is fine"
	if _, err := s.CSAF(); err == nil {
		t.Error("a statement without a known justification was written")
	}
}

// FuzzParseAdvisory feeds OSV records, real and mangled, to the parser
// and the matcher: an error or a match, never a panic.
func FuzzParseAdvisory(f *testing.F) {
	ents, _ := os.ReadDir(filepath.Join("testdata", "advisories"))
	for _, e := range ents {
		data, _ := os.ReadFile(filepath.Join("testdata", "advisories", e.Name()))
		f.Add(data, "2.1.2")
	}
	f.Add([]byte(`{"id":"X","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.0-"}]}]}]}`), "0.9")
	comps := func(v string) []Component {
		var out []Component
		for _, e := range []string{"Go", "npm", "PyPI", "RubyGems", "crates.io"} {
			for _, n := range []string{"rack", "semver", "requests", "golang.org/x/net", "regex", "a"} {
				out = append(out, Component{Ecosystem: e, Name: n, Version: v})
			}
		}
		return out
	}
	f.Fuzz(func(t *testing.T, data []byte, version string) {
		a, err := ParseAdvisory(data)
		if err != nil {
			return
		}
		MatchAll(comps(version), []*Advisory{a})
	})
}

// TestMalformedLockfiles: a broken lockfile is an error naming it; an
// unknown kind of file is refused.
func TestMalformedLockfiles(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"package-lock.json": `{"lockfileVersion": 3, "packages": {`,
		"Cargo.lock":        "[[package]\nname = ",
		"go.mod":            "module x\nrequire (\n  example.org/a v1.0.0 v2\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o600)
		if _, err := ReadLockfile(context.Background(), p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want an error naming the file", name, err)
		}
	}
	if _, err := ReadLockfile(context.Background(), filepath.Join(dir, "main.go")); err == nil || !strings.Contains(err.Error(), "not a lockfile") {
		t.Errorf("main.go: %v", err)
	}
	if _, err := ReadLockfile(context.Background(), filepath.Join(dir, "Gemfile.lock")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing Gemfile.lock: %v", err)
	}
}

// TestCheckFolder: a check reads the lockfiles, keeps only the records
// naming a shipped package (a Go package path inside a shipped module
// among them) and matches them.
func TestCheckFolder(t *testing.T) {
	c := &Check{OSVData: filepath.Join("testdata", "advisories"),
		Lockfiles: []string{filepath.Join("testdata", "lockfiles", "rubygems-doc2pdf-server", "Gemfile.lock"),
			filepath.Join("testdata", "lockfiles", "go-gin-demo", "go.sum")},
		Components: []Component{{Ecosystem: "PyPI", Name: "Requests", Version: "2.31.0"}}}
	res, err := c.Run(context.Background())
	if err != nil || res.Advisories != 13 || res.Skipped != nil {
		t.Fatalf("check: %v, %d advisories, skipped %v", err, res.Advisories, res.Skipped)
	}
	want := []string{"GHSA-54rr-7fvw-6x8f rack@2.1.2", "GHSA-8c26-wmh5-6g9v golang.org/x/crypto@0.0.0-20200622213623-75b288015ac9",
		"GHSA-9wx4-h78v-vm56 Requests@2.31.0", "GHSA-c2f4-cvqm-65w2 puma@3.12.1", "GHSA-vr8q-g5c7-m54m nokogiri@1.10.4"}
	if got := found(res.Matches); !slices.Equal(got, want) {
		t.Errorf("matches:\n got %q\nwant %q", got, want)
	}
	c.Components = []Component{{Ecosystem: "Frobnix", Name: "x", Version: "1"}}
	if _, err := c.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "Frobnix") {
		t.Errorf("an unknown ecosystem: %v", err)
	}
}

// FuzzLockfile feeds mangled lockfiles of each kind to ReadLockfile: an
// error or complete components, never a crash.
func FuzzLockfile(f *testing.F) {
	kinds := []string{"go.mod", "package-lock.json", "Gemfile.lock", "Cargo.lock", "requirements.txt"}
	for i, p := range []string{"go-web-crawler/go.mod", "npm-notedown-backend/package-lock.json", "rubygems-doc2pdf-server/Gemfile.lock",
		"cargo-mal/Cargo.lock", "pypi-netflix-meta-scraper/requirements.txt"} {
		data, _ := os.ReadFile(filepath.Join("testdata", "lockfiles", p))
		f.Add(data, uint8(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, kind uint8) {
		p := filepath.Join(t.TempDir(), kinds[int(kind)%len(kinds)])
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		// A panic of an extractor comes back as an error.
		cs, _ := ReadLockfile(context.Background(), p)
		for _, c := range cs {
			if c.Name == "" || c.Version == "" || c.Ecosystem == "" {
				t.Fatalf("incomplete component %+v", c)
			}
		}
	})
}
