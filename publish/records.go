package publish

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// PageURL returns the URL of the advisory's page on the project's site.
func (a *Advisory) PageURL() string {
	return a.Project.BaseURL() + "/advisories/" + a.ID + ".html"
}

// RecordURL returns the URL of one of the advisory's JSON records on the
// project's site; kind is "cve", "osv" or "csaf".
func (a *Advisory) RecordURL(kind string) string {
	return a.Project.BaseURL() + "/advisories/" + a.ID + "." + kind + ".json"
}

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	return b.Bytes(), nil
}

// ---- CVE Record Format 5.x ----

// CVEDataVersion is the CVE Record Format version of CVERecord's output.
const CVEDataVersion = "5.1"

// ErrNoCVE is returned by the CVE generators for an advisory without a CVE
// ID or without the CNA's organisation ID.
var ErrNoCVE = errors.New("no CVE ID or no CNA organisation ID")

// CVERecord returns the advisory as a published CVE Record (JSON 5.x):
// the record's metadata and the CNA container.
func CVERecord(a *Advisory) ([]byte, error) {
	cna, err := cnaContainer(a)
	if err != nil {
		return nil, err
	}
	meta := map[string]any{
		"cveId":         a.CVE,
		"assignerOrgId": a.Project.CNAOrgID,
		"state":         "PUBLISHED",
	}
	if a.Project.CNAShortName != "" {
		meta["assignerShortName"] = a.Project.CNAShortName
	}
	if !a.Published.IsZero() {
		meta["datePublished"] = rfc3339(a.Published)
		meta["dateUpdated"] = rfc3339(a.LastUpdate())
	}
	return marshal(map[string]any{
		"dataType":    "CVE_RECORD",
		"dataVersion": CVEDataVersion,
		"cveMetadata": meta,
		"containers":  map[string]any{"cna": cna},
	})
}

// CVESubmission returns the body a CNA sends to CVE Services to publish
// the record: {"cnaContainer": {...}}.
func CVESubmission(a *Advisory) ([]byte, error) {
	cna, err := cnaContainer(a)
	if err != nil {
		return nil, err
	}
	return marshal(map[string]any{"cnaContainer": cna})
}

var cveRefTags = map[ReferenceType]string{
	RefAdvisory: "vendor-advisory", RefFix: "patch", RefReport: "issue-tracking",
	RefPackage: "product", RefArticle: "technical-description", RefEvidence: "exploit",
}

// collectionURLs are the package collections of CVE's collectionURL for
// the common ecosystems.
var collectionURLs = map[string]string{
	"Go": "https://pkg.go.dev", "npm": "https://www.npmjs.com", "PyPI": "https://pypi.org",
	"crates.io": "https://crates.io", "Maven": "https://repo.maven.apache.org/maven2",
	"RubyGems": "https://rubygems.org", "NuGet": "https://www.nuget.org", "Packagist": "https://packagist.org",
}

func cveVersionType(p Package, r Range) string {
	switch r.Type {
	case RangeSemver:
		return "semver"
	case RangeGit:
		return "git"
	}
	switch p.Ecosystem {
	case "Go", "npm", "crates.io":
		return "semver"
	case "PyPI":
		return "python"
	case "Maven":
		return "maven"
	case "Debian", "Ubuntu":
		return "dpkg"
	}
	return "custom"
}

func cnaContainer(a *Advisory) (map[string]any, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if a.CVE == "" || a.Project.CNAOrgID == "" {
		return nil, fmt.Errorf("advisory %s: CVE record: %w", a.ID, ErrNoCVE)
	}
	pm := map[string]any{"orgId": a.Project.CNAOrgID}
	if a.Project.CNAShortName != "" {
		pm["shortName"] = a.Project.CNAShortName
	}
	cna := map[string]any{
		"providerMetadata": pm,
		"title":            a.Title,
		"descriptions":     []any{map[string]any{"lang": "en", "value": a.Description}},
	}
	if a.Status == Released && !a.Published.IsZero() {
		cna["datePublic"] = rfc3339(a.Published)
	}

	var affected []any
	for _, p := range a.Packages {
		e := map[string]any{
			"vendor":        a.Project.Vendor,
			"product":       p.ProductName(),
			"defaultStatus": "unaffected",
		}
		if p.Ecosystem != "" {
			e["packageName"] = p.Name
			if u, ok := collectionURLs[p.Ecosystem]; ok {
				e["collectionURL"] = u
			}
		}
		if p.Repo != "" {
			e["repo"] = p.Repo
		}
		var versions []any
		for _, r := range p.Ranges {
			v := map[string]any{"status": "affected", "versionType": cveVersionType(p, r)}
			v["version"] = r.Introduced
			if r.Introduced == "" {
				v["version"] = "0"
			}
			switch {
			case r.Fixed != "":
				v["lessThan"] = r.Fixed
			case r.LastAffected != "":
				v["lessThanOrEqual"] = r.LastAffected
			default:
				v["lessThan"] = "*"
			}
			versions = append(versions, v)
		}
		for _, ver := range p.Versions {
			versions = append(versions, map[string]any{"version": ver, "status": "affected"})
		}
		e["versions"] = versions
		affected = append(affected, e)
	}
	cna["affected"] = affected

	refs := []any{map[string]any{"url": a.PageURL(), "name": a.FullID(), "tags": []string{"vendor-advisory"}}}
	for _, r := range a.References {
		ref := map[string]any{"url": r.URL}
		if r.Name != "" {
			ref["name"] = r.Name
		}
		if tag, ok := cveRefTags[r.Type]; ok {
			ref["tags"] = []string{tag}
		}
		refs = append(refs, ref)
	}
	if a.UpstreamAdvisory != "" {
		refs = append(refs, map[string]any{"url": a.UpstreamAdvisory, "tags": []string{"third-party-advisory"}})
	}
	cna["references"] = dedupRefs(refs)

	if a.ProblemType != "" || a.CWE != "" {
		d := map[string]any{"lang": "en", "type": "text", "description": a.ProblemType}
		if a.CWE != "" {
			d["type"] = "CWE"
			d["cweId"] = a.CWE
			if a.ProblemType == "" {
				d["description"] = a.CWE
			} else {
				d["description"] = a.CWE + " " + a.ProblemType
			}
		}
		cna["problemTypes"] = []any{map[string]any{"descriptions": []any{d}}}
	}

	var metrics []any
	for _, c := range a.Scores() {
		key := map[string]string{"3.0": "cvssV3_0", "3.1": "cvssV3_1", "4.0": "cvssV4_0"}[c.Version]
		metrics = append(metrics, map[string]any{
			"format":    "CVSS",
			"scenarios": []any{map[string]any{"lang": "en", "value": "GENERAL"}},
			key:         c.JSON(),
		})
	}
	if len(metrics) > 0 {
		cna["metrics"] = metrics
	}
	if a.Workaround != "" {
		cna["workarounds"] = []any{map[string]any{"lang": "en", "value": a.Workaround}}
	}
	var credits []any
	seen := map[string]bool{}
	for _, c := range a.Credits {
		k := c.DisplayName() + "\x00" + string(c.Kind())
		if seen[k] {
			continue // the schema wants unique items
		}
		seen[k] = true
		credits = append(credits, map[string]any{"lang": "en", "value": c.DisplayName(), "type": c.Kind().Words()})
	}
	if len(credits) > 0 {
		cna["credits"] = credits
	}
	return cna, nil
}

func dedupRefs(refs []any) []any {
	seen := map[string]bool{}
	var out []any
	for _, r := range refs {
		u := r.(map[string]any)["url"].(string)
		if !seen[u] {
			seen[u] = true
			out = append(out, r)
		}
	}
	return out
}

// ---- OSV ----

// OSVSchemaVersion is the OSV schema version of OSV's output.
const OSVSchemaVersion = "1.6.0"

// OSVID returns the advisory's OSV ID: "x_" and the full ID (OSV reserves
// bare prefixes for registered databases).
func (a *Advisory) OSVID() string { return "x_" + a.FullID() }

// OSV returns the advisory as an OSV record.
func OSV(a *Advisory) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	o := map[string]any{
		"schema_version": OSVSchemaVersion,
		"id":             a.OSVID(),
		"modified":       rfc3339(a.LastUpdate()),
		"summary":        a.Title,
		"details":        osvDetails(a),
	}
	if !a.Published.IsZero() {
		o["published"] = rfc3339(a.Published)
	}
	if a.CVE != "" {
		o["aliases"] = []string{a.CVE}
	}
	if len(a.Related) > 0 {
		o["related"] = a.Related
	}
	var sev []any
	for _, c := range a.Scores() {
		t := "CVSS_V3"
		if c.Version == "4.0" {
			t = "CVSS_V4"
		}
		sev = append(sev, map[string]any{"type": t, "score": c.Vector})
	}
	if len(sev) > 0 {
		o["severity"] = sev
	}
	var affected []any
	for _, p := range a.Packages {
		e := map[string]any{}
		var ranges []any
		var other []string
		for _, r := range p.Ranges {
			if p.Ecosystem == "" && r.Type != RangeGit {
				// OSV ranges of these types need an ecosystem package.
				other = append(other, rangeText(r))
				continue
			}
			intro := r.Introduced
			if intro == "" {
				intro = "0"
			}
			events := []any{map[string]any{"introduced": intro}}
			switch {
			case r.Fixed != "":
				events = append(events, map[string]any{"fixed": r.Fixed})
			case r.LastAffected != "":
				events = append(events, map[string]any{"last_affected": r.LastAffected})
			}
			rg := map[string]any{"type": string(r.Type), "events": events}
			if r.Type == RangeGit {
				rg["repo"] = p.Repo
			}
			ranges = append(ranges, rg)
		}
		if p.Ecosystem != "" {
			pkg := map[string]any{"ecosystem": p.Ecosystem, "name": p.Name}
			if p.PURL != "" {
				pkg["purl"] = p.PURL
			}
			e["package"] = pkg
		}
		if len(ranges) > 0 {
			e["ranges"] = ranges
		}
		if len(p.Versions) > 0 {
			e["versions"] = p.Versions
		}
		if len(other) > 0 || p.Ecosystem == "" {
			e["ecosystem_specific"] = map[string]any{"product": p.ProductName(), "affected_ranges": other}
		}
		affected = append(affected, e)
	}
	o["affected"] = affected

	refs := []any{map[string]any{"type": "ADVISORY", "url": a.PageURL()}}
	for _, r := range a.References {
		t := r.Type
		if t == "" {
			t = RefWeb
		}
		refs = append(refs, map[string]any{"type": string(t), "url": r.URL})
	}
	if a.UpstreamAdvisory != "" {
		refs = append(refs, map[string]any{"type": "ADVISORY", "url": a.UpstreamAdvisory})
	}
	o["references"] = dedupRefs(refs)

	var credits []any
	for _, c := range a.Credits {
		cr := map[string]any{"name": c.DisplayName(), "type": string(c.Kind())}
		if c.Contact != "" && !c.Anonymous {
			cr["contact"] = []string{c.Contact}
		}
		credits = append(credits, cr)
	}
	if len(credits) > 0 {
		o["credits"] = credits
	}
	o["database_specific"] = map[string]any{"vendor": a.Project.Vendor, "status": a.Status.String()}
	return marshal(o)
}

func osvDetails(a *Advisory) string {
	d := a.Description
	if a.Workaround != "" {
		d += "\n\n## Work-around\n\n" + a.Workaround
	}
	return d
}

// rangeText describes a range: ">=1.0.0, <1.2.3" (no space inside a
// constraint, so wrapped text never splits one).
func rangeText(r Range) string {
	var parts []string
	if r.Introduced != "" && r.Introduced != "0" {
		parts = append(parts, ">="+r.Introduced)
	}
	switch {
	case r.Fixed != "":
		parts = append(parts, "<"+r.Fixed)
	case r.LastAffected != "":
		parts = append(parts, "<="+r.LastAffected)
	}
	if len(parts) == 0 {
		return "all versions"
	}
	return strings.Join(parts, ", ")
}

// ---- CSAF 2.0 ----

// TLP labels of CSAF 2.0 (TLP 1.0 names: WHITE is TLP 2.0's CLEAR, which
// the CSAF 2.0 schema does not know).
const (
	TLPRed   = "RED"
	TLPWhite = "WHITE"
)

// CSAF returns the advisory as a CSAF 2.0 security advisory: TLP:RED and
// status "interim" while embargoed, TLP:WHITE (CLEAR) and "final" once
// released.
func CSAF(a *Advisory) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	initial := a.Published
	if initial.IsZero() {
		initial = a.Updated
	}
	if initial.IsZero() {
		return nil, fmt.Errorf("advisory %s: CSAF: needs a (planned) publication time", a.ID)
	}
	hist := a.History()
	var revs []any
	for i, r := range hist {
		d := r.Date
		if d.IsZero() {
			d = initial
		}
		revs = append(revs, map[string]any{"date": rfc3339(d), "number": strconv.Itoa(i + 1), "summary": r.Summary})
	}
	current := a.LastUpdate()
	if current.IsZero() {
		current = initial
	}
	dist := map[string]any{"tlp": map[string]any{"label": TLPWhite, "url": "https://www.first.org/tlp/"}}
	status := "final"
	if a.Status != Released {
		dist = map[string]any{
			"tlp":  map[string]any{"label": TLPRed, "url": "https://www.first.org/tlp/"},
			"text": "Embargoed until " + initial.UTC().Format("2006-01-02 15:04 UTC") + ". For the named recipients only; do not share.",
		}
		status = "interim"
	}
	doc := map[string]any{
		"category":     "csaf_security_advisory",
		"csaf_version": "2.0",
		"lang":         "en",
		"title":        a.Title,
		"distribution": dist,
		"publisher": map[string]any{
			"category":        "vendor",
			"name":            a.Project.Vendor,
			"namespace":       a.Project.BaseURL(),
			"contact_details": "security@" + a.Project.Domain,
		},
		"tracking": map[string]any{
			"id":                   a.FullID(),
			"status":               status,
			"version":              strconv.Itoa(len(hist)),
			"initial_release_date": rfc3339(initial),
			"current_release_date": rfc3339(current),
			"revision_history":     revs,
			"generator":            map[string]any{"engine": map[string]any{"name": "cvd"}},
		},
		"notes": []any{map[string]any{"category": "summary", "title": "Summary", "text": a.Title}},
		"references": []any{
			map[string]any{"category": "self", "summary": "This advisory (CSAF)", "url": a.RecordURL("csaf")},
			map[string]any{"category": "external", "summary": "This advisory (web page)", "url": a.PageURL()},
		},
	}
	if p := a.PrimaryScore(); p != nil {
		doc["aggregate_severity"] = map[string]any{"text": string(p.Severity)}
	}

	// Product tree: vendor → product → one entry per affected range,
	// listed version and fixed version.
	var prodBranches []any
	var affectedIDs, fixedIDs []string
	n := 0
	nextID := func() string { n++; return fmt.Sprintf("CSAFPID-%04d", n) }
	leaf := func(category, name, product string) (map[string]any, string) {
		id := nextID()
		return map[string]any{
			"category": category,
			"name":     name,
			"product":  map[string]any{"name": product + " " + name, "product_id": id},
		}, id
	}
	for _, p := range a.Packages {
		var leaves []any
		for _, r := range p.Ranges {
			l, id := leaf("product_version_range", versRange(p, r), p.ProductName())
			leaves = append(leaves, l)
			affectedIDs = append(affectedIDs, id)
		}
		for _, v := range p.Versions {
			l, id := leaf("product_version", v, p.ProductName())
			leaves = append(leaves, l)
			affectedIDs = append(affectedIDs, id)
		}
		for _, v := range p.FixedVersions() {
			l, id := leaf("product_version", v, p.ProductName())
			leaves = append(leaves, l)
			fixedIDs = append(fixedIDs, id)
		}
		prodBranches = append(prodBranches, map[string]any{"category": "product_name", "name": p.ProductName(), "branches": leaves})
	}
	tree := map[string]any{"branches": []any{map[string]any{"category": "vendor", "name": a.Project.Vendor, "branches": prodBranches}}}

	vuln := map[string]any{
		"title": a.Title,
		"notes": []any{map[string]any{"category": "description", "title": "Description", "text": a.Description}},
	}
	ps := map[string]any{"known_affected": affectedIDs}
	if len(fixedIDs) > 0 {
		ps["fixed"] = fixedIDs
	}
	vuln["product_status"] = ps
	if a.CVE != "" {
		vuln["cve"] = a.CVE
	}
	if a.CWE != "" && a.ProblemType != "" {
		vuln["cwe"] = map[string]any{"id": a.CWE, "name": a.ProblemType}
	}
	if a.Status == Released && !a.Published.IsZero() {
		vuln["release_date"] = rfc3339(a.Published)
	}
	var rems []any
	for _, p := range a.Packages {
		if fixed := p.FixedVersions(); len(fixed) > 0 {
			rems = append(rems, map[string]any{
				"category":    "vendor_fix",
				"details":     "Upgrade " + p.ProductName() + " to " + strings.Join(fixed, " or ") + ", or a later version.",
				"product_ids": affectedIDs,
				"url":         a.PageURL(),
			})
		}
	}
	if a.Workaround != "" {
		rems = append(rems, map[string]any{"category": "workaround", "details": a.Workaround, "product_ids": affectedIDs})
	}
	if len(rems) > 0 {
		vuln["remediations"] = rems
	}
	var scores []any
	for _, c := range a.Scores() {
		if c.Version == "4.0" {
			// CSAF 2.0 knows CVSS v2 and v3 only; keep the v4.0 vector as a note.
			vuln["notes"] = append(vuln["notes"].([]any), map[string]any{
				"category": "other", "title": "CVSS v4.0",
				"text": fmt.Sprintf("%s (score %s, %s)", c.Vector, c.ScoreString(), c.Severity),
			})
			continue
		}
		scores = append(scores, map[string]any{"cvss_v3": c.JSON(), "products": affectedIDs})
	}
	if len(scores) > 0 {
		vuln["scores"] = scores
	}
	var acks []any
	for _, c := range a.Credits {
		ack := map[string]any{"summary": c.Kind().Words()}
		if !c.Anonymous && c.DisplayName() != AnonymousName {
			ack["names"] = []string{c.Name}
		} else {
			ack["summary"] = "anonymous " + c.Kind().Words()
		}
		acks = append(acks, ack)
	}
	if len(acks) > 0 {
		vuln["acknowledgments"] = acks
	}
	var vrefs []any
	for _, r := range a.References {
		s := r.Name
		if s == "" {
			s = strings.ToLower(string(r.Type))
			if s == "" {
				s = "web"
			}
		}
		vrefs = append(vrefs, map[string]any{"category": "external", "summary": s, "url": r.URL})
	}
	if a.UpstreamAdvisory != "" {
		vrefs = append(vrefs, map[string]any{"category": "external", "summary": "Upstream advisory", "url": a.UpstreamAdvisory})
	}
	if len(vrefs) > 0 {
		vuln["references"] = vrefs
	}
	return marshal(map[string]any{
		"document":        doc,
		"product_tree":    tree,
		"vulnerabilities": []any{vuln},
	})
}

// versRange writes a range in the "vers" notation CSAF recommends for
// product_version_range.
func versRange(p Package, r Range) string {
	if r.Type == RangeGit {
		return "git " + rangeText(r)
	}
	scheme := "generic"
	switch {
	case r.Type == RangeSemver:
		scheme = "semver"
	case p.Ecosystem == "Go":
		scheme = "golang"
	case p.Ecosystem == "npm":
		scheme = "npm"
	case p.Ecosystem == "PyPI":
		scheme = "pypi"
	case p.Ecosystem == "crates.io":
		scheme = "cargo"
	case p.Ecosystem == "Maven":
		scheme = "maven"
	}
	var cs []string
	if r.Introduced != "" && r.Introduced != "0" {
		cs = append(cs, ">="+r.Introduced)
	}
	switch {
	case r.Fixed != "":
		cs = append(cs, "<"+r.Fixed)
	case r.LastAffected != "":
		cs = append(cs, "<="+r.LastAffected)
	}
	if len(cs) == 0 {
		return "vers:" + scheme + "/*"
	}
	return "vers:" + scheme + "/" + strings.Join(cs, "|")
}
