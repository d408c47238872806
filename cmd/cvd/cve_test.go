package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cvd-project/cvd/internal/cvdtest"
)

// TestCVEFromFreshInit takes a project from a fresh 'cvd init --project'
// through both ways to a CVE: not a CNA (the request mail to the CNA set
// in [cve], then the ID it assigned), and a CNA (no request; the record
// ready to submit, from the CLI and the site). On the way it checks the
// wording a team sees: the project's name in the key and the
// announcement, the type without a CWE in parentheses, "1 subscriber",
// and an early-release announcement filled to the line width.
func TestCVEFromFreshInit(t *testing.T) {
	w := newDeskWorldInit(t, []string{"--project", "libexample"})
	if out := gpgShowKey(t, w.dir+"/keys/project.pub.asc"); !strings.Contains(out, "libexample security team <security@example.org>") {
		t.Errorf("the project key's user ID:\n%s", out)
	}
	cvdtest.SetConfig(t, w.cfg, "request_to", `"cve-request@cna.example"`)
	w.start("")
	w.cli(0, "member", "add", "announce", "sam@users.example", "--role", "subscriber")
	id := w.report("overflow", "A long header overflows a buffer.")
	w.cli(0, "incident", "confirm", id)
	if out := w.cli(1, "incident", "cve", id, "--request"); !strings.Contains(out, "title") {
		t.Errorf("CVE request without the facts:\n%s", out)
	}
	w.cli(0, "incident", "set", id, "title", "Heap overflow in header parsing")
	w.cli(0, "incident", "set", id, "description", "A long header overflows a heap buffer.")
	w.cli(0, "incident", "set", id, "cwe", "CWE-122")
	w.cli(0, "incident", "versions", id, "libexample", "--introduced", "1.0", "--fixed", "1.4.2")

	// Not a CNA: the request goes to the configured CNA.
	req := w.cli(0, "incident", "cve", id, "--request")
	if !strings.Contains(req, "To: cve-request@cna.example") || !strings.Contains(req, "Heap overflow in header parsing") {
		t.Errorf("CVE request:\n%s", req)
	}
	if !strings.Contains(req, "Type:        CWE-122\n") {
		t.Errorf("the type of an issue with only a CWE:\n%s", req)
	}
	w.cli(0, "incident", "cve", id, "CVE-2026-12345")
	if out := w.cli(1, "incident", "export", id, "--format", "cve"); !strings.Contains(out, "cve.org_id") {
		t.Errorf("CVE record without the CNA's organisation ID:\n%s", out)
	}
	w.s.stop(t)

	// A CNA: the organisation in [cve]; no request; the record is ready.
	cvdtest.SetConfig(t, w.cfg, "cna", "true")
	cvdtest.SetConfig(t, w.cfg, "org_id", `"0c8d8d8e-7d6e-4b5c-9a1b-2c3d4e5f6a7b"`)
	cvdtest.SetConfig(t, w.cfg, "short_name", `"libexample"`)
	w.start("")
	if out := w.cli(1, "incident", "cve", id, "--request"); !strings.Contains(out, "is a CNA") || !strings.Contains(out, "--format cve") {
		t.Errorf("CVE request by a CNA:\n%s", out)
	}
	var rec struct {
		DataType string `json:"dataType"`
		Meta     struct {
			CVEID, AssignerOrgID, AssignerShortName, State string
		} `json:"cveMetadata"`
	}
	out := w.cli(0, "incident", "export", id, "--format", "cve")
	if err := json.Unmarshal([]byte(out), &rec); err != nil || rec.DataType != "CVE_RECORD" || rec.Meta.CVEID != "CVE-2026-12345" ||
		rec.Meta.AssignerOrgID != "0c8d8d8e-7d6e-4b5c-9a1b-2c3d4e5f6a7b" || rec.Meta.AssignerShortName != "libexample" {
		t.Errorf("CVE record (%v):\n%s", err, out)
	}

	reason := "a fix was pushed to the public repository before the date, and the change describes the overflow in detail"
	w.cli(0, "incident", "publish", id, "--now", "--reason", reason)
	ann := string(waitMail(t, w.dir, "sam@users.example", 1)[0])
	if from := cvdtest.Header([]byte(ann), "From"); !strings.HasPrefix(from, `"libexample security`) {
		t.Errorf("the announcement's From does not name the project: %s", from)
	}
	body := strings.ReplaceAll(ann, "\r\n", "\n")
	i := strings.Index(body, "The embargo on this issue ended early")
	if i < 0 {
		t.Fatalf("the early release is not explained:\n%s", body)
	}
	para, _, _ := strings.Cut(body[i:], "\n\n")
	for _, l := range strings.Split(para, "\n") {
		if len(l) > 72 {
			t.Errorf("a line of %d characters in the early-release paragraph:\n%s", len(l), para)
		}
	}
	if lifted := w.waitText(w.cora, 0, "embargo"); !strings.Contains(lifted, "(1 subscriber)") {
		t.Errorf("the members' notice of the release:\n%s", lifted)
	}
	resp, err := http.Get("http://" + w.s.webAddr(t) + "/advisories/" + id + ".cve.json")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "0c8d8d8e-7d6e-4b5c-9a1b-2c3d4e5f6a7b") {
		t.Errorf("GET /advisories/%s.cve.json: %s\n%s", id, resp.Status, page)
	}
	resp, err = http.Get("http://" + w.s.webAddr(t) + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "encrypted with OpenPGP if you can") {
		t.Errorf("GET /:\n%s", page)
	}
}
