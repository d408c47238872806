package config

import (
	"strings"
	"testing"
	"time"
)

func TestCVESection(t *testing.T) {
	dir := t.TempDir()
	c, err := Parse([]byte(`domain = "example.org"
[cve]
cna = true
org_id = "0C8D8D8E-7D6E-4B5C-9A1B-2C3D4E5F6A7B"
short_name = "libexample"
`), "cvd.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !c.CVE.CNA || c.CVE.OrgID != "0c8d8d8e-7d6e-4b5c-9a1b-2c3d4e5f6a7b" || c.CVE.ShortName != "libexample" || c.Agenda.Every != 7*24*time.Hour {
		t.Errorf("cve = %+v, agenda = %+v", c.CVE, c.Agenda)
	}
	for text, want := range map[string]string{
		"[cve]\ncna = true":                      "cvd.toml: cve.org_id: missing",
		"[cve]\norg_id = \"mitre\"":              "cve.org_id: \"mitre\" is not a CVE organisation ID",
		"[cve]\nshort_name = \"two words\"":      "cve.short_name: \"two words\" is not a CNA short name",
		"[cve]\nrequest_to = \"nobody\"":         "cve.request_to: \"nobody\" is not an address",
		"[cve]\nreqest_to = \"cna@example.net\"": "did you mean \"cve.request_to\"",
		"[embargo]\nagenda_every = \"30m\"":      "embargo.agenda_every: 30m0s is out of range",
	} {
		_, err := Parse([]byte("domain = \"example.org\"\n"+text), "cvd.toml", dir)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
	if c, err := Parse([]byte("domain = \"example.org\"\n[embargo]\nagenda_every = \"0d\"\n"), "cvd.toml", dir); err != nil || c.Agenda.Every != 0 {
		t.Errorf("agenda_every = \"0d\": %v, %v", err, c)
	}
}

func TestWithProject(t *testing.T) {
	text, err := Example("example.org")
	if err != nil {
		t.Fatal(err)
	}
	out, err := WithProject(text, "libexample")
	if err != nil || !strings.Contains(out, "\nproject = \"libexample\"\n") || strings.Contains(out, "\nproject = \"example.org\"") {
		t.Errorf("WithProject: %v\n%s", err, out)
	}
	c, err := Parse([]byte(out), "cvd.toml", t.TempDir())
	if err != nil || c.Embargo.Project != "libexample" {
		t.Errorf("parse: %v", err)
	}
	if _, err := WithProject(text, "evil\"\nx = 1"); err == nil {
		t.Error("a project name with a quote and a line break was taken")
	}
}
