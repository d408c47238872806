package publish

import (
	"errors"
	"fmt"
	"math"
	"strings"

	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"
)

// Severity is a CVSS qualitative severity rating.
type Severity string

// The CVSS qualitative severity ratings (CVSS v3.1 and v4.0 use the same bands).
const (
	SeverityNone     Severity = "None"
	SeverityLow      Severity = "Low"
	SeverityMedium   Severity = "Medium"
	SeverityHigh     Severity = "High"
	SeverityCritical Severity = "Critical"
)

// SeverityOf returns the qualitative rating of a CVSS score.
func SeverityOf(score float64) Severity {
	switch {
	case score >= 9.0:
		return SeverityCritical
	case score >= 7.0:
		return SeverityHigh
	case score >= 4.0:
		return SeverityMedium
	case score >= 0.1:
		return SeverityLow
	}
	return SeverityNone
}

// Upper returns the rating in capitals, as CVE, CSAF and FIRST's JSON
// schemas spell it ("HIGH").
func (s Severity) Upper() string { return strings.ToUpper(string(s)) }

// CVSS is a parsed and scored CVSS vector.
type CVSS struct {
	// Version is "3.0", "3.1" or "4.0".
	Version string
	// Vector is the vector string as given (trimmed).
	Vector string
	// Score is the base score for CVSS v3.x, and for CVSS v4.0 the one
	// score the specification defines (CVSS-B, -BT, -BE or -BTE,
	// see Nomenclature).
	Score float64
	// Severity is the rating of Score.
	Severity Severity
	// TemporalScore and EnvironmentalScore are set for CVSS v3.x only;
	// they equal Score when the vector has no such metrics.
	TemporalScore, EnvironmentalScore float64
	// Nomenclature is "CVSS-B", "CVSS-BT", "CVSS-BE" or "CVSS-BTE" for
	// CVSS v4.0, empty for v3.x.
	Nomenclature string
	// Metrics are the metrics of the vector in the order they appear.
	Metrics []Metric
}

// Metric is one metric of a vector, with its meaning in words.
type Metric struct {
	Key   string // "AV"
	Name  string // "Attack Vector"
	Group string // "Base", "Temporal", "Threat", "Environmental" or "Supplemental"
	Value string // "N"
	Words string // "Network"

	json      string // key in FIRST's JSON schema: "attackVector"
	jsonValue string // value in FIRST's JSON schema: "NETWORK"
}

// String returns the metric in words, e.g. "Attack Vector (AV): Network".
func (m Metric) String() string {
	return fmt.Sprintf("%s (%s): %s", m.Name, m.Key, m.Words)
}

// ScoreString returns the score with one decimal, e.g. "7.5".
func (c *CVSS) ScoreString() string { return fmt.Sprintf("%.1f", c.Score) }

// VectorError reports a malformed CVSS vector. Metric names the metric at
// fault when there is one.
type VectorError struct {
	Vector string
	Metric string // metric key, e.g. "AV"; empty for errors of the whole vector
	Reason string
}

func (e *VectorError) Error() string {
	if e.Metric == "" {
		return fmt.Sprintf("cvss vector %q: %s", e.Vector, e.Reason)
	}
	return fmt.Sprintf("cvss vector %q: metric %s: %s", e.Vector, e.Metric, e.Reason)
}

type valueDef struct {
	code, words, json string
}

type metricDef struct {
	key, name, group, json string
	values                 []valueDef
	required               bool
}

func (d *metricDef) value(code string) (valueDef, bool) {
	for _, v := range d.values {
		if v.code == code {
			return v, true
		}
	}
	return valueDef{}, false
}

func (d *metricDef) codes() string {
	cs := make([]string, len(d.values))
	for i, v := range d.values {
		cs[i] = v.code
	}
	return strings.Join(cs, ", ")
}

// v builds a value; the JSON spelling defaults to the words in capitals
// with spaces and hyphens as underscores.
func v(code, words string, json ...string) valueDef {
	j := strings.NewReplacer(" ", "_", "-", "_").Replace(strings.ToUpper(words))
	if len(json) > 0 {
		j = json[0]
	}
	return valueDef{code: code, words: words, json: j}
}

var (
	notDefined = v("X", "Not Defined")
	v3AV       = []valueDef{v("N", "Network"), v("A", "Adjacent Network"), v("L", "Local"), v("P", "Physical")}
	v3AC       = []valueDef{v("L", "Low"), v("H", "High")}
	v3PR       = []valueDef{v("N", "None"), v("L", "Low"), v("H", "High")}
	v3UI       = []valueDef{v("N", "None"), v("R", "Required")}
	v3S        = []valueDef{v("U", "Unchanged"), v("C", "Changed")}
	v3CIA      = []valueDef{v("H", "High"), v("L", "Low"), v("N", "None")}
	req        = []valueDef{notDefined, v("H", "High"), v("M", "Medium"), v("L", "Low")}
)

func x(vals []valueDef) []valueDef { return append([]valueDef{notDefined}, vals...) }

var cvss3Metrics = []metricDef{
	{key: "AV", name: "Attack Vector", group: "Base", json: "attackVector", values: v3AV, required: true},
	{key: "AC", name: "Attack Complexity", group: "Base", json: "attackComplexity", values: v3AC, required: true},
	{key: "PR", name: "Privileges Required", group: "Base", json: "privilegesRequired", values: v3PR, required: true},
	{key: "UI", name: "User Interaction", group: "Base", json: "userInteraction", values: v3UI, required: true},
	{key: "S", name: "Scope", group: "Base", json: "scope", values: v3S, required: true},
	{key: "C", name: "Confidentiality Impact", group: "Base", json: "confidentialityImpact", values: v3CIA, required: true},
	{key: "I", name: "Integrity Impact", group: "Base", json: "integrityImpact", values: v3CIA, required: true},
	{key: "A", name: "Availability Impact", group: "Base", json: "availabilityImpact", values: v3CIA, required: true},
	{key: "E", name: "Exploit Code Maturity", group: "Temporal", json: "exploitCodeMaturity",
		values: []valueDef{notDefined, v("H", "High"), v("F", "Functional"), v("P", "Proof-of-Concept"), v("U", "Unproven")}},
	{key: "RL", name: "Remediation Level", group: "Temporal", json: "remediationLevel",
		values: []valueDef{notDefined, v("U", "Unavailable"), v("W", "Workaround"), v("T", "Temporary Fix"), v("O", "Official Fix")}},
	{key: "RC", name: "Report Confidence", group: "Temporal", json: "reportConfidence",
		values: []valueDef{notDefined, v("C", "Confirmed"), v("R", "Reasonable"), v("U", "Unknown")}},
	{key: "CR", name: "Confidentiality Requirement", group: "Environmental", json: "confidentialityRequirement", values: req},
	{key: "IR", name: "Integrity Requirement", group: "Environmental", json: "integrityRequirement", values: req},
	{key: "AR", name: "Availability Requirement", group: "Environmental", json: "availabilityRequirement", values: req},
	{key: "MAV", name: "Modified Attack Vector", group: "Environmental", json: "modifiedAttackVector", values: x(v3AV)},
	{key: "MAC", name: "Modified Attack Complexity", group: "Environmental", json: "modifiedAttackComplexity", values: x(v3AC)},
	{key: "MPR", name: "Modified Privileges Required", group: "Environmental", json: "modifiedPrivilegesRequired", values: x(v3PR)},
	{key: "MUI", name: "Modified User Interaction", group: "Environmental", json: "modifiedUserInteraction", values: x(v3UI)},
	{key: "MS", name: "Modified Scope", group: "Environmental", json: "modifiedScope", values: x(v3S)},
	{key: "MC", name: "Modified Confidentiality Impact", group: "Environmental", json: "modifiedConfidentialityImpact", values: x(v3CIA)},
	{key: "MI", name: "Modified Integrity Impact", group: "Environmental", json: "modifiedIntegrityImpact", values: x(v3CIA)},
	{key: "MA", name: "Modified Availability Impact", group: "Environmental", json: "modifiedAvailabilityImpact", values: x(v3CIA)},
}

var (
	v4AV  = []valueDef{v("N", "Network"), v("A", "Adjacent"), v("L", "Local"), v("P", "Physical")}
	v4AT  = []valueDef{v("N", "None"), v("P", "Present")}
	v4UI  = []valueDef{v("N", "None"), v("P", "Passive"), v("A", "Active")}
	v4SIA = []valueDef{notDefined, v("S", "Safety"), v("H", "High"), v("L", "Low"), v("N", "Negligible", "NONE")}
)

// cvss4Metrics lists the CVSS v4.0 metrics in the order the specification
// requires them in a vector.
var cvss4Metrics = []metricDef{
	{key: "AV", name: "Attack Vector", group: "Base", json: "attackVector", values: v4AV, required: true},
	{key: "AC", name: "Attack Complexity", group: "Base", json: "attackComplexity", values: v3AC, required: true},
	{key: "AT", name: "Attack Requirements", group: "Base", json: "attackRequirements", values: v4AT, required: true},
	{key: "PR", name: "Privileges Required", group: "Base", json: "privilegesRequired", values: v3PR, required: true},
	{key: "UI", name: "User Interaction", group: "Base", json: "userInteraction", values: v4UI, required: true},
	{key: "VC", name: "Vulnerable System Confidentiality Impact", group: "Base", json: "vulnConfidentialityImpact", values: v3CIA, required: true},
	{key: "VI", name: "Vulnerable System Integrity Impact", group: "Base", json: "vulnIntegrityImpact", values: v3CIA, required: true},
	{key: "VA", name: "Vulnerable System Availability Impact", group: "Base", json: "vulnAvailabilityImpact", values: v3CIA, required: true},
	{key: "SC", name: "Subsequent System Confidentiality Impact", group: "Base", json: "subConfidentialityImpact", values: v3CIA, required: true},
	{key: "SI", name: "Subsequent System Integrity Impact", group: "Base", json: "subIntegrityImpact", values: v3CIA, required: true},
	{key: "SA", name: "Subsequent System Availability Impact", group: "Base", json: "subAvailabilityImpact", values: v3CIA, required: true},
	{key: "E", name: "Exploit Maturity", group: "Threat", json: "exploitMaturity",
		values: []valueDef{notDefined, v("A", "Attacked"), v("P", "POC", "PROOF_OF_CONCEPT"), v("U", "Unreported")}},
	{key: "CR", name: "Confidentiality Requirement", group: "Environmental", json: "confidentialityRequirement", values: req},
	{key: "IR", name: "Integrity Requirement", group: "Environmental", json: "integrityRequirement", values: req},
	{key: "AR", name: "Availability Requirement", group: "Environmental", json: "availabilityRequirement", values: req},
	{key: "MAV", name: "Modified Attack Vector", group: "Environmental", json: "modifiedAttackVector", values: x(v4AV)},
	{key: "MAC", name: "Modified Attack Complexity", group: "Environmental", json: "modifiedAttackComplexity", values: x(v3AC)},
	{key: "MAT", name: "Modified Attack Requirements", group: "Environmental", json: "modifiedAttackRequirements", values: x(v4AT)},
	{key: "MPR", name: "Modified Privileges Required", group: "Environmental", json: "modifiedPrivilegesRequired", values: x(v3PR)},
	{key: "MUI", name: "Modified User Interaction", group: "Environmental", json: "modifiedUserInteraction", values: x(v4UI)},
	{key: "MVC", name: "Modified Vulnerable System Confidentiality", group: "Environmental", json: "modifiedVulnConfidentialityImpact", values: x(v3CIA)},
	{key: "MVI", name: "Modified Vulnerable System Integrity", group: "Environmental", json: "modifiedVulnIntegrityImpact", values: x(v3CIA)},
	{key: "MVA", name: "Modified Vulnerable System Availability", group: "Environmental", json: "modifiedVulnAvailabilityImpact", values: x(v3CIA)},
	{key: "MSC", name: "Modified Subsequent System Confidentiality", group: "Environmental", json: "modifiedSubConfidentialityImpact",
		values: []valueDef{notDefined, v("H", "High"), v("L", "Low"), v("N", "Negligible", "NONE")}},
	{key: "MSI", name: "Modified Subsequent System Integrity", group: "Environmental", json: "modifiedSubIntegrityImpact", values: v4SIA},
	{key: "MSA", name: "Modified Subsequent System Availability", group: "Environmental", json: "modifiedSubAvailabilityImpact", values: v4SIA},
	{key: "S", name: "Safety", group: "Supplemental", json: "Safety",
		values: []valueDef{notDefined, v("N", "Negligible"), v("P", "Present")}},
	{key: "AU", name: "Automatable", group: "Supplemental", json: "Automatable",
		values: []valueDef{notDefined, v("N", "No"), v("Y", "Yes")}},
	{key: "R", name: "Recovery", group: "Supplemental", json: "Recovery",
		values: []valueDef{notDefined, v("A", "Automatic"), v("U", "User"), v("I", "Irrecoverable")}},
	{key: "V", name: "Value Density", group: "Supplemental", json: "valueDensity",
		values: []valueDef{notDefined, v("D", "Diffuse"), v("C", "Concentrated")}},
	{key: "RE", name: "Vulnerability Response Effort", group: "Supplemental", json: "vulnerabilityResponseEffort",
		values: []valueDef{notDefined, v("L", "Low"), v("M", "Moderate"), v("H", "High")}},
	{key: "U", name: "Provider Urgency", group: "Supplemental", json: "providerUrgency",
		values: []valueDef{notDefined, v("Clear", "Clear"), v("Green", "Green"), v("Amber", "Amber"), v("Red", "Red")}},
}

// ParseCVSS parses, validates and scores a CVSS v3.0, v3.1 or v4.0 vector
// string such as "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H". Errors are
// *VectorError values naming the metric at fault.
func ParseCVSS(vector string) (*CVSS, error) {
	vector = strings.TrimSpace(vector)
	prefix, rest, ok := strings.Cut(vector, "/")
	if !ok || !strings.HasPrefix(prefix, "CVSS:") {
		return nil, &VectorError{Vector: vector, Reason: `must start with "CVSS:3.1/" or "CVSS:4.0/"`}
	}
	version := strings.TrimPrefix(prefix, "CVSS:")
	var defs []metricDef
	switch version {
	case "3.0", "3.1":
		defs = cvss3Metrics
	case "4.0":
		defs = cvss4Metrics
	default:
		return nil, &VectorError{Vector: vector, Reason: fmt.Sprintf("unsupported CVSS version %q (want 3.1 or 4.0)", version)}
	}
	c := &CVSS{Version: version, Vector: vector}
	seen := map[string]bool{}
	last := -1 // index in defs of the previous metric, for v4.0's fixed order
	for _, part := range strings.Split(rest, "/") {
		key, val, ok := strings.Cut(part, ":")
		if !ok || key == "" {
			return nil, &VectorError{Vector: vector, Reason: fmt.Sprintf("malformed part %q (want METRIC:VALUE)", part)}
		}
		idx := -1
		for i := range defs {
			if defs[i].key == key {
				idx = i
				break
			}
		}
		if idx < 0 {
			return nil, &VectorError{Vector: vector, Metric: key, Reason: fmt.Sprintf("unknown metric for CVSS v%s", version)}
		}
		d := &defs[idx]
		if seen[key] {
			return nil, &VectorError{Vector: vector, Metric: key, Reason: fmt.Sprintf("%s given more than once", d.name)}
		}
		seen[key] = true
		if version == "4.0" {
			if idx < last {
				return nil, &VectorError{Vector: vector, Metric: key, Reason: fmt.Sprintf("%s is out of order (CVSS v4.0 metrics must follow the specification's order)", d.name)}
			}
			last = idx
		}
		vd, ok := d.value(val)
		if !ok {
			return nil, &VectorError{Vector: vector, Metric: key, Reason: fmt.Sprintf("%s: invalid value %q (want one of %s)", d.name, val, d.codes())}
		}
		c.Metrics = append(c.Metrics, Metric{Key: key, Name: d.name, Group: d.group, Value: val, Words: vd.words, json: d.json, jsonValue: vd.json})
	}
	for i := range defs {
		if defs[i].required && !seen[defs[i].key] {
			return nil, &VectorError{Vector: vector, Metric: defs[i].key, Reason: fmt.Sprintf("base metric %s is missing", defs[i].name)}
		}
	}
	if err := c.score(); err != nil {
		return nil, &VectorError{Vector: vector, Reason: err.Error()}
	}
	c.Severity = SeverityOf(c.Score)
	return c, nil
}

// score computes the scores with go-cvss. The vector has been validated
// already, so an error here is a disagreement with the library.
func (c *CVSS) score() error {
	var err error
	switch c.Version {
	case "3.0":
		var s *gocvss30.CVSS30
		if s, err = gocvss30.ParseVector(c.Vector); err == nil {
			c.Score, c.TemporalScore, c.EnvironmentalScore = s.BaseScore(), s.TemporalScore(), s.EnvironmentalScore()
		}
	case "3.1":
		var s *gocvss31.CVSS31
		if s, err = gocvss31.ParseVector(c.Vector); err == nil {
			c.Score, c.TemporalScore, c.EnvironmentalScore = s.BaseScore(), s.TemporalScore(), s.EnvironmentalScore()
		}
	case "4.0":
		var s *gocvss40.CVSS40
		if s, err = gocvss40.ParseVector(c.Vector); err == nil {
			c.Score, c.Nomenclature = s.Score(), s.Nomenclature()
		}
	default:
		err = errors.New("unsupported version")
	}
	if err != nil {
		return fmt.Errorf("scoring: %w", err)
	}
	c.Score = round1(c.Score)
	c.TemporalScore = round1(c.TemporalScore)
	c.EnvironmentalScore = round1(c.EnvironmentalScore)
	return nil
}

// round1 removes binary noise so a score prints and marshals as x.y.
func round1(f float64) float64 { return math.Round(f*10) / 10 }

// BaseMetrics returns the metrics of the base group.
func (c *CVSS) BaseMetrics() []Metric {
	var ms []Metric
	for _, m := range c.Metrics {
		if m.Group == "Base" {
			ms = append(ms, m)
		}
	}
	return ms
}

// JSON returns the vector as an object of FIRST's CVSS JSON schema for its
// version (the cvssV3_1 / cvssV4_0 objects of CVE records, cvss_v3 in
// CSAF): version, vectorString, baseScore, baseSeverity, the temporal and
// environmental scores of a v3.x vector that has such metrics, and each
// metric given in the vector.
func (c *CVSS) JSON() map[string]any {
	o := map[string]any{
		"version":      c.Version,
		"vectorString": c.Vector,
		"baseScore":    c.Score,
		"baseSeverity": c.Severity.Upper(),
	}
	groups := map[string]bool{}
	for _, m := range c.Metrics {
		o[m.json] = m.jsonValue
		groups[m.Group] = true
	}
	if c.Version != "4.0" {
		if groups["Temporal"] {
			o["temporalScore"] = c.TemporalScore
			o["temporalSeverity"] = SeverityOf(c.TemporalScore).Upper()
		}
		if groups["Environmental"] {
			o["environmentalScore"] = c.EnvironmentalScore
			o["environmentalSeverity"] = SeverityOf(c.EnvironmentalScore).Upper()
		}
	}
	return o
}
