package publish

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Project is who publishes: the open-source project, its vendor name and
// mail domain, and its CVE Numbering Authority.
type Project struct {
	Name   string // product name, e.g. "libexample"
	Vendor string // maintainer organisation, e.g. "The Example Project"
	Domain string // mail and web domain, e.g. "example.org"
	// URL is the public base URL of the security pages, e.g.
	// "https://example.org/security"; defaults to "https://" + Domain.
	URL string
	// AdvisoryPrefix is put before an advisory ID to make it globally
	// unique ("EXAMPLE" makes "EXAMPLE-2026-001"); defaults to Name in
	// capitals.
	AdvisoryPrefix string
	// CNAOrgID and CNAShortName identify the CVE Numbering Authority in
	// CVE records: the project's own when it is a CNA, else the CNA that
	// assigned the ID. CNAOrgID is a UUID.
	CNAOrgID, CNAShortName string
}

// BaseURL returns URL without a trailing slash, or https://Domain.
func (p Project) BaseURL() string {
	if p.URL != "" {
		return strings.TrimRight(p.URL, "/")
	}
	return "https://" + p.Domain
}

// Prefix returns the advisory ID prefix.
func (p Project) Prefix() string {
	if p.AdvisoryPrefix != "" {
		return p.AdvisoryPrefix
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(p.Name) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else if b.Len() > 0 {
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

// Status says whether an advisory is still under embargo.
type Status int

// Advisory states.
const (
	Embargoed Status = iota // known to the incident's members only (TLP:RED)
	Released                // public (TLP:CLEAR)
)

func (s Status) String() string {
	if s == Released {
		return "released"
	}
	return "embargoed"
}

// RangeType says how to compare the versions of a Range.
type RangeType string

// Range types, as OSV names them.
const (
	RangeSemver    RangeType = "SEMVER"    // semantic versions
	RangeEcosystem RangeType = "ECOSYSTEM" // the ecosystem's own ordering
	RangeGit       RangeType = "GIT"       // commit hashes in Package.Repo
)

// Range is one span of affected versions: from Introduced ("0" or empty:
// from the beginning) up to Fixed (exclusive) or LastAffected (inclusive);
// with neither, every later version is affected.
type Range struct {
	Type         RangeType
	Introduced   string
	Fixed        string
	LastAffected string
}

// Package is one affected product or package.
type Package struct {
	// Product is the product's name as users know it; defaults to Name.
	Product string
	// Ecosystem is the OSV ecosystem ("Go", "npm", "PyPI", "crates.io",
	// "Debian", ...), empty for software outside any ecosystem.
	Ecosystem string
	// Name is the package name within Ecosystem (or the product name).
	Name string
	// PURL is an optional package URL.
	PURL string
	// Repo is the source repository; needed for RangeGit ranges.
	Repo string
	// Ranges are the affected version ranges.
	Ranges []Range
	// Versions are affected versions listed one by one (optional).
	Versions []string
}

// ProductName returns Product or else Name.
func (p Package) ProductName() string {
	if p.Product != "" {
		return p.Product
	}
	return p.Name
}

// FixedVersions returns the Fixed versions of the ranges.
func (p Package) FixedVersions() []string {
	var vs []string
	for _, r := range p.Ranges {
		if r.Fixed != "" {
			vs = append(vs, r.Fixed)
		}
	}
	return vs
}

// CreditType is the role of a credited party, as OSV names it.
type CreditType string

// Credit types (OSV and CVE define the same set).
const (
	CreditFinder               CreditType = "FINDER"
	CreditReporter             CreditType = "REPORTER"
	CreditAnalyst              CreditType = "ANALYST"
	CreditCoordinator          CreditType = "COORDINATOR"
	CreditRemediationDeveloper CreditType = "REMEDIATION_DEVELOPER"
	CreditRemediationReviewer  CreditType = "REMEDIATION_REVIEWER"
	CreditRemediationVerifier  CreditType = "REMEDIATION_VERIFIER"
	CreditTool                 CreditType = "TOOL"
	CreditSponsor              CreditType = "SPONSOR"
	CreditOther                CreditType = "OTHER"
)

var creditWords = map[CreditType]string{
	CreditFinder: "finder", CreditReporter: "reporter", CreditAnalyst: "analyst",
	CreditCoordinator: "coordinator", CreditRemediationDeveloper: "remediation developer",
	CreditRemediationReviewer: "remediation reviewer", CreditRemediationVerifier: "remediation verifier",
	CreditTool: "tool", CreditSponsor: "sponsor", CreditOther: "other",
}

// Words returns the type in lower-case words, as CVE records spell it
// ("remediation developer").
func (t CreditType) Words() string { return creditWords[t] }

// Credit acknowledges a person, organisation or tool.
type Credit struct {
	Name      string     // ignored when Anonymous
	Contact   string     // optional URL or mailto:, published with the name
	Type      CreditType // defaults to FINDER
	Anonymous bool       // credited without a name
}

// AnonymousName is how an anonymous credit is shown.
const AnonymousName = "Anonymous"

// DisplayName returns Name, or AnonymousName for anonymous credits.
func (c Credit) DisplayName() string {
	if c.Anonymous || strings.TrimSpace(c.Name) == "" {
		return AnonymousName
	}
	return c.Name
}

// Kind returns Type, defaulting to FINDER.
func (c Credit) Kind() CreditType {
	if c.Type == "" {
		return CreditFinder
	}
	return c.Type
}

// ReferenceType classifies a reference, as OSV names it.
type ReferenceType string

// Reference types.
const (
	RefAdvisory ReferenceType = "ADVISORY"
	RefArticle  ReferenceType = "ARTICLE"
	RefReport   ReferenceType = "REPORT"
	RefFix      ReferenceType = "FIX"
	RefPackage  ReferenceType = "PACKAGE"
	RefEvidence ReferenceType = "EVIDENCE"
	RefWeb      ReferenceType = "WEB"
)

// Reference is a link about the vulnerability.
type Reference struct {
	URL  string
	Type ReferenceType // defaults to WEB
	Name string        // optional title
}

// Revision is one entry of an advisory's history.
type Revision struct {
	Date    time.Time
	Summary string
}

// Advisory is what an incident knows at release, the single source of
// every record and page.
type Advisory struct {
	ID          string // incident ID, "2026-001"
	Title       string // one line, e.g. "Heap overflow in the frobnicator"
	Description string // plain text; paragraphs separated by blank lines
	// ProblemType is the kind of issue in words ("Remote code execution",
	// "Denial of service", ...) and CWE an optional "CWE-787".
	ProblemType, CWE string
	CVE              string   // "CVE-2026-12345", empty if none
	CVSS             []string // vectors, at most one per CVSS version
	Packages         []Package
	Workaround       string // plain text, empty if none
	Credits          []Credit
	References       []Reference
	// UpstreamAdvisory links the advisory of a vulnerable dependency
	// when this incident is about one.
	UpstreamAdvisory string
	// Related are IDs of other advisories about the same flaw (the
	// upstream advisory of a vulnerable dependency and its aliases).
	Related   []string
	Published time.Time // public release time (the embargo's end)
	Updated   time.Time // last change; defaults to Published
	Revisions []Revision
	Status    Status
	Project   Project
}

var (
	idPattern  = regexp.MustCompile(`^[0-9]{4}-[0-9]{3,6}$`)
	cvePattern = regexp.MustCompile(`^CVE-[0-9]{4}-[0-9]{4,19}$`)
	cwePattern = regexp.MustCompile(`^CWE-[1-9][0-9]*$`)
	uuidRe     = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[1-5][0-9A-Fa-f]{3}-[89ABab][0-9A-Fa-f]{3}-[0-9A-Fa-f]{12}$`)
)

// ValidID reports whether id has the incident ID form YYYY-NNN.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// FullID returns the globally unique advisory ID, e.g. "EXAMPLE-2026-001".
func (a *Advisory) FullID() string {
	if p := a.Project.Prefix(); p != "" {
		return p + "-" + a.ID
	}
	return a.ID
}

// LastUpdate returns Updated, or Published when Updated is unset.
func (a *Advisory) LastUpdate() time.Time {
	if a.Updated.After(a.Published) {
		return a.Updated
	}
	return a.Published
}

// History returns the revisions, or a single "Initial release" revision
// at Published (plus "Updated" at Updated when later) if none are set.
func (a *Advisory) History() []Revision {
	if len(a.Revisions) > 0 {
		return a.Revisions
	}
	h := []Revision{{Date: a.Published, Summary: "Initial release"}}
	if a.Updated.After(a.Published) {
		h = append(h, Revision{Date: a.Updated, Summary: "Updated"})
	}
	return h
}

// Scores parses the CVSS vectors. Validate has checked them.
func (a *Advisory) Scores() []*CVSS {
	var cs []*CVSS
	for _, v := range a.CVSS {
		if c, err := ParseCVSS(v); err == nil {
			cs = append(cs, c)
		}
	}
	return cs
}

// PrimaryScore returns the CVSS v4.0 score if there is one, else the v3.x
// one, else nil.
func (a *Advisory) PrimaryScore() *CVSS {
	var best *CVSS
	for _, c := range a.Scores() {
		if best == nil || c.Version > best.Version {
			best = c
		}
	}
	return best
}

// Validate checks that the advisory has what every record needs. It
// does not require the release fields of an embargoed advisory.
func (a *Advisory) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !ValidID(a.ID) {
		bad("id %q is not of the form YYYY-NNN", a.ID)
	}
	if strings.TrimSpace(a.Title) == "" || strings.ContainsAny(a.Title, "\r\n") {
		bad("title must be one non-empty line")
	}
	if strings.TrimSpace(a.Description) == "" {
		bad("description is empty")
	}
	a.checkTexts(bad)
	if a.CVE != "" && !cvePattern.MatchString(a.CVE) {
		bad("cve %q is not of the form CVE-YYYY-NNNN", a.CVE)
	}
	if a.CWE != "" && !cwePattern.MatchString(a.CWE) {
		bad("cwe %q is not of the form CWE-NNN", a.CWE)
	}
	versions := map[string]bool{}
	for _, v := range a.CVSS {
		c, err := ParseCVSS(v)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		major := c.Version[:1]
		if versions[major] {
			bad("more than one CVSS v%s.x vector", major)
		}
		versions[major] = true
	}
	p := a.Project
	if p.Name == "" || p.Vendor == "" || p.Domain == "" {
		bad("project name, vendor and domain are required")
	}
	if p.CNAOrgID != "" && !uuidRe.MatchString(p.CNAOrgID) {
		bad("project CNA org ID %q is not a UUID", p.CNAOrgID)
	}
	if p.URL != "" {
		if err := checkURL(p.URL); err != nil {
			bad("project url: %v", err)
		}
	}
	if len(a.Packages) == 0 {
		bad("no affected package")
	}
	for i, pk := range a.Packages {
		if pk.Name == "" {
			bad("package %d: name is empty", i+1)
		}
		if len(pk.Ranges) == 0 && len(pk.Versions) == 0 {
			bad("package %s: no affected ranges or versions", pk.Name)
		}
		for _, r := range pk.Ranges {
			switch r.Type {
			case RangeSemver, RangeEcosystem:
			case RangeGit:
				if pk.Repo == "" {
					bad("package %s: a GIT range needs the repository", pk.Name)
				}
			default:
				bad("package %s: unknown range type %q", pk.Name, r.Type)
			}
			if r.Fixed != "" && r.LastAffected != "" {
				bad("package %s: a range has both fixed and last affected", pk.Name)
			}
		}
		if pk.Repo != "" {
			if err := checkURL(pk.Repo); err != nil {
				bad("package %s: repo: %v", pk.Name, err)
			}
		}
	}
	for _, c := range a.Credits {
		if _, ok := creditWords[c.Kind()]; !ok {
			bad("credit %q: unknown type %q", c.DisplayName(), c.Type)
		}
		if strings.ContainsAny(c.Name, "\r\n") {
			bad("credit name must be one line")
		}
	}
	for _, r := range a.References {
		if err := checkURL(r.URL); err != nil {
			bad("reference: %v", err)
		}
	}
	if a.UpstreamAdvisory != "" {
		if err := checkURL(a.UpstreamAdvisory); err != nil {
			bad("upstream advisory: %v", err)
		}
	}
	if a.Status == Released && a.Published.IsZero() {
		bad("a released advisory needs its publication time")
	}
	if len(errs) > 0 {
		return fmt.Errorf("advisory %s: %w", a.ID, errors.Join(errs...))
	}
	return nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

// rfc3339 formats a time in UTC, as every record wants it.
func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }
