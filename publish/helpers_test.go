package publish

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

var testProject = Project{
	Name:         "libexample",
	Vendor:       "The Example Project",
	Domain:       "example.org",
	URL:          "https://example.org/security",
	CNAOrgID:     "b3476cb9-2e3d-41a6-98d0-0f47421a65b6",
	CNAShortName: "example",
}

var testPublished = time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)

// sampleAdvisory uses every field of Advisory.
func sampleAdvisory() *Advisory {
	return &Advisory{
		ID:    "2026-001",
		Title: "Heap buffer overflow in the frobnicator's header parser",
		Description: "A crafted frob header longer than 64 KiB makes the frobnicator write past the end of " +
			"a heap buffer. A remote attacker who can send frob messages to a service using " +
			"libexample can crash it and may be able to execute code.\n\n" +
			"The bug was introduced in 1.0.0 with the streaming parser.",
		ProblemType: "Out-of-bounds write",
		CWE:         "CWE-787",
		CVE:         "CVE-2026-12345",
		CVSS: []string{
			"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O",
			"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:P",
		},
		Packages: []Package{
			{Product: "libexample", Ecosystem: "Go", Name: "example.org/libexample", Repo: "https://git.example.org/libexample.git",
				Ranges: []Range{
					{Type: RangeSemver, Introduced: "1.0.0", Fixed: "1.2.3"},
					{Type: RangeSemver, Introduced: "1.3.0", Fixed: "1.3.1"},
				}},
			{Product: "frobd", Name: "frobd", Repo: "https://git.example.org/frobd.git",
				Ranges: []Range{
					{Type: RangeGit, Introduced: "0123456789abcdef0123456789abcdef01234567", Fixed: "89abcdef0123456789abcdef0123456789abcdef"},
					{Type: RangeEcosystem, Introduced: "0", LastAffected: "2.4"},
				},
				Versions: []string{"2.5-rc1"}},
		},
		Workaround: "Set max_header_size = 65535 in frob.conf; larger headers are then refused before parsing.",
		Credits: []Credit{
			{Name: "Jane Researcher", Contact: "https://jane.example.net", Type: CreditFinder},
			{Anonymous: true, Type: CreditReporter},
			{Name: "Élodie Fixer", Type: CreditRemediationDeveloper},
		},
		References: []Reference{
			{URL: "https://git.example.org/libexample/commit/89abcdef", Type: RefFix, Name: "Fix commit"},
			{URL: "https://bugs.example.org/1234", Type: RefReport},
		},
		UpstreamAdvisory: "https://upstream.example.com/advisories/UP-2026-7",
		Published:        testPublished,
		Updated:          testPublished.Add(26 * time.Hour),
		Status:           Released,
		Project:          testProject,
	}
}

// schemaURLs are where each schema is registered; they match the $id or
// $ref URLs the schemas use, so nothing is fetched from the network.
var schemaFiles = map[string]string{
	"https://cveproject.github.io/cve-schema/schema/CVE_Record_Format.json":         "cve/CVE_JSON_bundled_5.1.1.json",
	"https://raw.githubusercontent.com/ossf/osv-schema/main/validation/schema.json": "osv/schema.json",
	"https://docs.oasis-open.org/csaf/csaf/v2.0/csaf_json_schema.json":              "csaf/csaf_json_schema.json",
	"https://www.first.org/cvss/cvss-v2.0.json":                                     "csaf/cvss-v2.0.json",
	"https://www.first.org/cvss/cvss-v3.0.json":                                     "csaf/cvss-v3.0.json",
	"https://www.first.org/cvss/cvss-v3.1.json":                                     "csaf/cvss-v3.1.json",
}

const (
	cveSchema  = "https://cveproject.github.io/cve-schema/schema/CVE_Record_Format.json"
	osvSchema  = "https://raw.githubusercontent.com/ossf/osv-schema/main/validation/schema.json"
	csafSchema = "https://docs.oasis-open.org/csaf/csaf/v2.0/csaf_json_schema.json"
)

// noNetwork refuses every URL that is not registered as a resource.
type noNetwork struct{}

func (noNetwork) Load(url string) (any, error) {
	return nil, &os.PathError{Op: "load", Path: url, Err: os.ErrNotExist}
}

// compileSchema compiles one of the schemas from publish/testdata with
// format assertions on.
func compileSchema(t *testing.T, url string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.UseLoader(noNetwork{})
	c.AssertFormat()
	for u, file := range schemaFiles {
		data, err := os.ReadFile(filepath.Join("testdata", "schemas", file))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if err := c.AddResource(u, doc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	s, err := c.Compile(url)
	if err != nil {
		t.Fatalf("compile %s: %v", url, err)
	}
	return s
}

func validateJSON(t *testing.T, s *jsonschema.Schema, name string, data []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: not JSON: %v", name, err)
	}
	return s.Validate(inst)
}
