package publish

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSchemasAcceptTheirExamples checks the validator setup itself: the
// published examples validate and the known-bad OSV record does not.
func TestSchemasAcceptTheirExamples(t *testing.T) {
	for kind, url := range map[string]string{"cve": cveSchema, "osv": osvSchema, "csaf": csafSchema} {
		s := compileSchema(t, url)
		files, _ := filepath.Glob(filepath.Join("testdata", "schemas", kind, "examples", "*.json"))
		if len(files) == 0 {
			t.Fatalf("%s: no examples", kind)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := validateJSON(t, s, f, data); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	}
	data, err := os.ReadFile(filepath.Join("testdata", "schemas", "osv", "examples", "invalid", "nointroduced-CVE-2023-41045.json"))
	if err != nil {
		t.Fatal(err)
	}
	if validateJSON(t, compileSchema(t, osvSchema), "invalid", data) == nil {
		t.Error("the OSV record without an introduced event validated")
	}
}

// variants are advisories that exercise the optional parts differently.
func variants() map[string]*Advisory {
	full := sampleAdvisory()
	minimal := sampleAdvisory()
	minimal.CWE, minimal.ProblemType, minimal.CVSS, minimal.Workaround = "", "", nil, ""
	minimal.Credits, minimal.References, minimal.UpstreamAdvisory = nil, nil, ""
	minimal.Updated = time.Time{}
	minimal.Packages = minimal.Packages[:1]
	v3only := sampleAdvisory()
	v3only.CVSS = []string{"CVSS:3.1/AV:L/AC:H/PR:L/UI:R/S:C/C:L/I:N/A:N/CR:H/MAV:N"}
	v30 := sampleAdvisory()
	v30.CVSS = []string{"CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:N"}
	embargoed := sampleAdvisory()
	embargoed.Status = Embargoed
	open := sampleAdvisory()
	open.Packages = []Package{{Name: "frobd", Ranges: []Range{{Type: RangeEcosystem, Introduced: "2.0"}}}}
	return map[string]*Advisory{"full": full, "minimal": minimal, "v3only": v3only, "v3.0": v30, "embargoed": embargoed, "open-range": open}
}

func TestExportsValidateAgainstSchemas(t *testing.T) {
	cve, osv, csaf := compileSchema(t, cveSchema), compileSchema(t, osvSchema), compileSchema(t, csafSchema)
	for name, a := range variants() {
		rec, err := CVERecord(a)
		if err != nil {
			t.Fatalf("%s: CVERecord: %v", name, err)
		}
		if err := validateJSON(t, cve, name, rec); err != nil {
			t.Errorf("%s: CVE record: %v\n%s", name, err, rec)
		}
		sub, err := CVESubmission(a)
		if err != nil {
			t.Fatalf("%s: CVESubmission: %v", name, err)
		}
		var s struct {
			CNA map[string]any `json:"cnaContainer"`
		}
		if err := json.Unmarshal(sub, &s); err != nil || s.CNA["providerMetadata"] == nil {
			t.Errorf("%s: submission: %v %s", name, err, sub)
		}
		o, err := OSV(a)
		if err != nil {
			t.Fatalf("%s: OSV: %v", name, err)
		}
		if err := validateJSON(t, osv, name, o); err != nil {
			t.Errorf("%s: OSV: %v\n%s", name, err, o)
		}
		c, err := CSAF(a)
		if err != nil {
			t.Fatalf("%s: CSAF: %v", name, err)
		}
		if err := validateJSON(t, csaf, name, c); err != nil {
			t.Errorf("%s: CSAF: %v\n%s", name, err, c)
		}
	}
}

func TestCVERecordContent(t *testing.T) {
	rec, err := CVERecord(sampleAdvisory())
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Meta struct{ CveID, State string } `json:"cveMetadata"`
		C    struct {
			CNA struct {
				Provider struct{ OrgID string } `json:"providerMetadata"`
				Affected []struct {
					Vendor, Product, PackageName, DefaultStatus string
					Versions                                    []map[string]string
				}
				Metrics []map[string]any
				Credits []struct{ Value, Type string }
			} `json:"cna"`
		} `json:"containers"`
	}
	if err := json.Unmarshal(rec, &r); err != nil {
		t.Fatal(err)
	}
	cna := r.C.CNA
	if r.Meta.CveID != "CVE-2026-12345" || r.Meta.State != "PUBLISHED" || cna.Provider.OrgID != testProject.CNAOrgID {
		t.Errorf("metadata: %+v %+v", r.Meta, cna.Provider)
	}
	if len(cna.Affected) != 2 || cna.Affected[0].PackageName != "example.org/libexample" || cna.Affected[0].Vendor != "The Example Project" {
		t.Fatalf("affected: %+v", cna.Affected)
	}
	v := cna.Affected[0].Versions[0]
	if v["version"] != "1.0.0" || v["lessThan"] != "1.2.3" || v["versionType"] != "semver" || v["status"] != "affected" {
		t.Errorf("versions: %v", cna.Affected[0].Versions)
	}
	if len(cna.Metrics) != 2 || cna.Metrics[0]["cvssV3_1"].(map[string]any)["baseScore"] != 9.8 {
		t.Errorf("metrics: %v", cna.Metrics)
	}
	if len(cna.Credits) != 3 || cna.Credits[1].Value != AnonymousName || cna.Credits[2].Type != "remediation developer" {
		t.Errorf("credits: %+v", cna.Credits)
	}

	a := sampleAdvisory()
	a.CVE = ""
	if _, err := CVERecord(a); err == nil {
		t.Error("CVE record without a CVE ID")
	}
}

func TestCSAFTLP(t *testing.T) {
	for _, tc := range []struct {
		status         Status
		label, status2 string
	}{{Embargoed, "RED", "interim"}, {Released, "WHITE", "final"}} {
		a := sampleAdvisory()
		a.Status = tc.status
		data, err := CSAF(a)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Document struct {
				Distribution struct {
					TLP struct{ Label string }
				}
				Tracking struct{ Status, Version string }
			}
			Vulns []struct {
				Acks []struct {
					Names   []string
					Summary string
				} `json:"acknowledgments"`
				Status struct {
					Affected []string `json:"known_affected"`
					Fixed    []string
				} `json:"product_status"`
			} `json:"vulnerabilities"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatal(err)
		}
		if d.Document.Distribution.TLP.Label != tc.label || d.Document.Tracking.Status != tc.status2 {
			t.Errorf("%v: TLP %s, status %s", tc.status, d.Document.Distribution.TLP.Label, d.Document.Tracking.Status)
		}
		if d.Document.Tracking.Version != "2" {
			t.Errorf("version %q, want 2 (initial + update)", d.Document.Tracking.Version)
		}
		v := d.Vulns[0]
		if len(v.Status.Affected) != 5 || len(v.Status.Fixed) != 3 || len(v.Acks) != 3 || v.Acks[0].Names[0] != "Jane Researcher" {
			t.Errorf("vulnerability: %+v", v)
		}
	}
}

func TestOSVContent(t *testing.T) {
	data, err := OSV(sampleAdvisory())
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, want := range []string{`"id": "x_LIBEXAMPLE-2026-001"`, `"aliases": [`, `"CVE-2026-12345"`, `"type": "CVSS_V4"`,
		`"ecosystem": "Go"`, `"fixed": "1.2.3"`, `"type": "GIT"`, `"repo": "https://git.example.org/frobd.git"`,
		`"name": "Anonymous"`, `"contact": [`, `"modified": "2026-03-04T12:00:00Z"`, `"published": "2026-03-03T10:00:00Z"`} {
		if !strings.Contains(s, want) {
			t.Errorf("OSV lacks %s:\n%s", want, s)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	for name, mod := range map[string]func(*Advisory){
		"id":        func(a *Advisory) { a.ID = "../../etc" },
		"title":     func(a *Advisory) { a.Title = "two\nlines" },
		"cvss":      func(a *Advisory) { a.CVSS = []string{"CVSS:3.1/AV:N"} },
		"two v3":    func(a *Advisory) { a.CVSS = append(a.CVSS, "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:N") },
		"cve":       func(a *Advisory) { a.CVE = "CVE-26-1" },
		"packages":  func(a *Advisory) { a.Packages = nil },
		"git repo":  func(a *Advisory) { a.Packages[1].Repo = "" },
		"reference": func(a *Advisory) { a.References[0].URL = "javascript:alert(1)" },
		"published": func(a *Advisory) { a.Published = time.Time{} },
		"credit":    func(a *Advisory) { a.Credits[0].Type = "HERO" },
		"orgid":     func(a *Advisory) { a.Project.CNAOrgID = "nope" },
	} {
		a := sampleAdvisory()
		mod(a)
		if err := a.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := sampleAdvisory().Validate(); err != nil {
		t.Fatal(err)
	}
}
