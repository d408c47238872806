package deps

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Justifications are why a product is not affected, as CSAF VEX (flag
// labels) and OpenVEX name them.
var Justifications = []string{
	"component_not_present",
	"vulnerable_code_not_present",
	"vulnerable_code_not_in_execute_path",
	"vulnerable_code_cannot_be_controlled_by_adversary",
	"inline_mitigations_already_exist",
}

// ParseJustification accepts a justification with hyphens or
// underscores, in any case.
func ParseJustification(s string) (string, error) {
	j := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), "-", "_"))
	for _, k := range Justifications {
		if j == k {
			return k, nil
		}
	}
	return "", fmt.Errorf("justification %q: use one of %s", s, strings.Join(Justifications, ", "))
}

// Statement is the team's decision that the project is not affected by
// an advisory of a component it ships, and its revision when the team
// found later that it is affected after all.
type Statement struct {
	// ID is the statement's document ID, unique for the publisher
	// ("EXAMPLE-VEX-2026-001").
	ID string
	// Publisher is the project's vendor; Namespace its base URL; Product
	// the project's name.
	Publisher, Namespace, Product string
	// Contact is the publisher's security contact address.
	Contact string
	// URL is where the statement is published (its CSAF document).
	URL string
	// Advisory is the upstream advisory's ID; Aliases its other IDs (CVE).
	Advisory string
	Aliases  []string
	Summary  string
	// Components are the shipped components the advisory names.
	Components []Component
	// Justification is one of Justifications; Impact says why in words
	// (optional).
	Justification string
	Impact        string
	// Date is when the team decided.
	Date time.Time
	// Revised is when the team reversed the decision: the project is
	// affected, a fix is being prepared (zero while it stands). The
	// revised statement keeps the first one in its history.
	Revised time.Time
}

// RevisedAction is the action statement of a revised statement.
const RevisedAction = "A fix is being prepared; the project's own advisory will follow."

func (s *Statement) check() error {
	if s.ID == "" || s.Publisher == "" || s.Namespace == "" || s.Product == "" || s.Advisory == "" || s.Date.IsZero() {
		return fmt.Errorf("VEX statement: needs an ID, publisher, namespace, product, advisory and date")
	}
	if _, err := ParseJustification(s.Justification); err != nil {
		return fmt.Errorf("VEX statement %s: %w", s.ID, err)
	}
	if !s.Revised.IsZero() && s.Revised.Before(s.Date) {
		return fmt.Errorf("VEX statement %s: revised before it was made", s.ID)
	}
	return nil
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// CSAF returns the statement as a CSAF 2.0 document of category
// csaf_vex: the project as the product, each shipped component as a
// default component of it, the upstream advisory as the vulnerability
// with the product known_not_affected, flagged with the justification.
// A revised statement is version 2: the product known_affected, with
// the action statement as its remediation.
func (s *Statement) CSAF() ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	const product = "CSAFPID-0001"
	date := rfc3339(s.Date)
	title := s.Product + " is not affected by " + s.Advisory
	summary := s.Product + " ships " + componentList(s.Components) + ", which " + s.Advisory + " names; the " +
		s.Publisher + " security team determined that " + s.Product + " is not affected (" + strings.ReplaceAll(s.Justification, "_", " ") + ")."
	history := []any{map[string]any{"date": date, "number": "1", "summary": "Initial statement."}}
	version, current := "1", date
	if !s.Revised.IsZero() {
		version, current = "2", rfc3339(s.Revised)
		title = s.Product + " is affected by " + s.Advisory
		summary = s.Product + " ships " + componentList(s.Components) + ", which " + s.Advisory + " names. On " + s.Date.UTC().Format("2006-01-02") +
			" the " + s.Publisher + " security team stated that " + s.Product + " is not affected (" + strings.ReplaceAll(s.Justification, "_", " ") +
			"); on " + s.Revised.UTC().Format("2006-01-02") + " it revised that statement: " + s.Product + " is affected. " + RevisedAction
		history = append(history, map[string]any{"date": current, "number": "2", "summary": "Revised: the product is affected."})
	}
	doc := map[string]any{
		"category":     "csaf_vex",
		"csaf_version": "2.0",
		"lang":         "en",
		"title":        title,
		"distribution": map[string]any{"tlp": map[string]any{"label": "WHITE", "url": "https://www.first.org/tlp/"}},
		"publisher": map[string]any{
			"category":        "vendor",
			"name":            s.Publisher,
			"namespace":       s.Namespace,
			"contact_details": s.Contact,
		},
		"tracking": map[string]any{
			"id":                   s.ID,
			"status":               "final",
			"version":              version,
			"initial_release_date": date,
			"current_release_date": current,
			"revision_history":     history,
			"generator":            map[string]any{"engine": map[string]any{"name": "cvd"}},
		},
		"notes": []any{map[string]any{"category": "summary", "title": "Summary", "text": summary}},
	}
	if s.Contact == "" {
		delete(doc["publisher"].(map[string]any), "contact_details")
	}
	if s.URL != "" {
		doc["references"] = []any{map[string]any{"category": "self", "summary": "This statement (CSAF VEX)", "url": s.URL}}
	}
	ids := []string{product}
	var rels []any
	for i, c := range s.Components {
		cid := fmt.Sprintf("CSAFPID-%04d", i+2)
		full := fmt.Sprintf("CSAFPID-%04d", i+2+len(s.Components))
		rels = append(rels, map[string]any{
			"category":                     "default_component_of",
			"product_reference":            cid,
			"relates_to_product_reference": product,
			"full_product_name":            map[string]any{"name": c.Name + " " + c.Version + " as part of " + s.Product, "product_id": full},
		})
		ids = append(ids, full)
	}
	branches := []any{map[string]any{"category": "product_name", "name": s.Product,
		"product": map[string]any{"name": s.Product, "product_id": product}}}
	var comps []any
	for i, c := range s.Components {
		comps = append(comps, map[string]any{"category": "product_name", "name": c.Name, "branches": []any{map[string]any{
			"category": "product_version", "name": c.Version,
			"product": map[string]any{"name": c.Name + " " + c.Version, "product_id": fmt.Sprintf("CSAFPID-%04d", i+2)},
		}}})
	}
	tree := map[string]any{"branches": []any{map[string]any{"category": "vendor", "name": s.Publisher, "branches": branches}}}
	if len(comps) > 0 {
		tree["branches"] = append(tree["branches"].([]any), map[string]any{"category": "vendor", "name": "Third-party components", "branches": comps})
		tree["relationships"] = rels
	}
	vuln := map[string]any{
		"ids":            []any{map[string]any{"system_name": systemName(s.Advisory), "text": s.Advisory}},
		"product_status": map[string]any{"known_not_affected": ids},
		"flags":          []any{map[string]any{"label": s.Justification, "product_ids": ids, "date": date}},
		"references":     []any{map[string]any{"category": "external", "summary": "Upstream advisory " + s.Advisory, "url": "https://osv.dev/vulnerability/" + s.Advisory}},
	}
	for _, a := range s.Aliases {
		if strings.HasPrefix(a, "CVE-") {
			vuln["cve"] = a
			break
		}
	}
	if s.Summary != "" {
		vuln["title"] = s.Summary
		vuln["notes"] = []any{map[string]any{"category": "description", "title": "Upstream summary", "text": s.Summary}}
	}
	if !s.Revised.IsZero() {
		delete(vuln, "flags")
		vuln["product_status"] = map[string]any{"known_affected": ids}
		vuln["remediations"] = []any{map[string]any{"category": "none_available", "details": RevisedAction, "product_ids": ids, "date": current}}
		return marshal(map[string]any{"document": doc, "product_tree": tree, "vulnerabilities": []any{vuln}})
	}
	impact := s.Impact
	if impact == "" {
		impact = "Not affected: " + strings.ReplaceAll(s.Justification, "_", " ") + "."
	}
	vuln["threats"] = []any{map[string]any{"category": "impact", "details": impact, "product_ids": ids, "date": date}}
	return marshal(map[string]any{"document": doc, "product_tree": tree, "vulnerabilities": []any{vuln}})
}

// OpenVEX returns the statement as an OpenVEX 0.2.0 document; a revised
// statement is version 2, status affected with the action statement.
func (s *Statement) OpenVEX() ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	vuln := map[string]any{"name": s.Advisory, "@id": "https://osv.dev/vulnerability/" + s.Advisory}
	if len(s.Aliases) > 0 {
		vuln["aliases"] = s.Aliases
	}
	if s.Summary != "" {
		vuln["description"] = s.Summary
	}
	var subs []any
	for _, c := range s.Components {
		if p := c.PURL(); p != "" {
			subs = append(subs, map[string]any{"@id": p})
		}
	}
	prod := map[string]any{"@id": s.Namespace}
	if len(subs) > 0 {
		prod["subcomponents"] = subs
	}
	st := map[string]any{
		"vulnerability": vuln,
		"products":      []any{prod},
		"status":        "not_affected",
		"justification": s.Justification,
		"timestamp":     rfc3339(s.Date),
	}
	if s.Impact != "" {
		st["impact_statement"] = s.Impact
	}
	version, updated := 1, ""
	if !s.Revised.IsZero() {
		version, updated = 2, rfc3339(s.Revised)
		delete(st, "justification")
		delete(st, "impact_statement")
		st["status"], st["action_statement"], st["timestamp"] = "affected", RevisedAction, updated
	}
	id := s.URL
	if id == "" {
		id = strings.TrimRight(s.Namespace, "/") + "/vex/" + s.ID
	}
	doc := map[string]any{
		"@context":   "https://openvex.dev/ns/v0.2.0",
		"@id":        strings.TrimSuffix(id, ".csaf.json") + ".openvex.json",
		"author":     s.Publisher,
		"role":       "Document Creator",
		"timestamp":  rfc3339(s.Date),
		"version":    version,
		"tooling":    "cvd",
		"statements": []any{st},
	}
	if updated != "" {
		doc["last_updated"] = updated
	}
	return marshal(doc)
}

// PURL returns the component's package URL, or "" for an ecosystem
// without one.
func (c Component) PURL() string {
	typ := map[string]string{"Go": "golang", "npm": "npm", "PyPI": "pypi", "RubyGems": "gem", "crates.io": "cargo",
		"Maven": "maven", "NuGet": "nuget", "Packagist": "composer", "Pub": "pub", "Hex": "hex"}[baseEcosystem(c.Ecosystem)]
	if typ == "" || c.Name == "" {
		return ""
	}
	name := c.Name
	if typ == "pypi" {
		name = pypiSep.ReplaceAllString(strings.ToLower(name), "-")
	}
	var segs []string
	for _, p := range strings.Split(name, "/") {
		segs = append(segs, pathEscape(p))
	}
	v := c.Version
	if typ == "golang" && !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	return "pkg:" + typ + "/" + strings.Join(segs, "/") + "@" + pathEscape(v)
}

func pathEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func componentList(cs []Component) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name+" "+c.Version)
	}
	if len(out) == 0 {
		return "a component"
	}
	return strings.Join(out, ", ")
}

// systemName names the database an advisory ID comes from.
func systemName(id string) string {
	prefix, _, _ := strings.Cut(id, "-")
	switch prefix {
	case "GHSA":
		return "GitHub Advisory Database"
	case "GO":
		return "Go Vulnerability Database"
	case "PYSEC":
		return "PyPI Advisory Database"
	case "RUSTSEC":
		return "RustSec Advisory Database"
	case "CVE":
		return "CVE"
	}
	return "OSV"
}
