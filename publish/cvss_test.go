package publish

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// vectorCase is one line of the public CVSS test vectors.
type vectorCase struct {
	file, line string
	vector     string
	scores     []float64 // v3: base, temporal, environmental; v4: score
	severity   string    // macro-scores only
}

var macroLine = regexp.MustCompile(`^\{'vector': '([^']+)', 'score': ([0-9.]+), 'severity': '([A-Za-z]+)'\}$`)

func readVectors(t *testing.T, name string) []vectorCase {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "cvss", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []vectorCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		c := vectorCase{file: name, line: line}
		if m := macroLine.FindStringSubmatch(line); m != nil {
			s, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", name, line, err)
			}
			c.vector, c.scores, c.severity = m[1], []float64{s}, m[3]
		} else {
			vec, exp, ok := strings.Cut(line, " - ")
			if !ok {
				t.Fatalf("%s: malformed line %q", name, line)
			}
			c.vector = vec
			exp = strings.Trim(exp, "()")
			for _, f := range strings.Split(exp, ",") {
				f = strings.TrimSpace(f)
				if f == "" {
					continue
				}
				s, err := strconv.ParseFloat(f, 64)
				if err != nil {
					t.Fatalf("%s: %q: %v", name, line, err)
				}
				c.scores = append(c.scores, s)
			}
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatalf("%s: no vectors", name)
	}
	return cases
}

// knownRoundingDeviations are vectors whose CVSS v4.0 score go-cvss v0.6.4
// rounds one tenth low: the unrounded value lands one floating-point ULP
// below an x.x5 tie and the library rounds without the epsilon lift that
// FIRST's and Red Hat's calculators add (RedHatProductSecurity/
// cvss-v4-calculator#66/#67). The test asserts the deviation is exactly
// this, so a fixed library version makes the test fail and this list can go.
var knownRoundingDeviations = map[string]bool{
	"CVSS:4.0/AV:N/AC:L/AT:P/PR:H/UI:A/VC:N/VI:H/VA:L/SC:N/SI:N/SA:L": true,
	"CVSS:4.0/AV:N/AC:H/AT:P/PR:H/UI:A/VC:L/VI:H/VA:N/SC:L/SI:N/SA:N": true,
	"CVSS:4.0/AV:L/AC:L/AT:P/PR:N/UI:A/VC:L/VI:H/VA:N/SC:N/SI:N/SA:N": true,
	"CVSS:4.0/AV:L/AC:L/AT:P/PR:H/UI:N/VC:N/VI:L/VA:H/SC:L/SI:L/SA:N": true,
}

// TestCVSSPublicVectors scores every vector of the public test files
// (RedHatProductSecurity/cvss, FIRST's macro-scores) and compares with
// the expected scores and, where given, severities.
func TestCVSSPublicVectors(t *testing.T) {
	files := []string{
		"vectors_simple3", "vectors_calculator3", "vectors_cvsslib3", "vectors_simple31",
		"vectors_simple4", "vectors_supplemental4", "vectors_security4", "vectors_threat4", "macro-scores",
	}
	total := 0
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			failures := 0
			for _, c := range readVectors(t, name) {
				total++
				got, err := ParseCVSS(c.vector)
				if err != nil {
					t.Errorf("%s: %v", c.line, err)
					failures++
					continue
				}
				want := c.scores
				have := []float64{got.Score}
				if got.Version != "4.0" {
					have = append(have, got.TemporalScore, got.EnvironmentalScore)
				}
				if len(want) != len(have) {
					t.Fatalf("%s: %d expected scores for a v%s vector", c.line, len(want), got.Version)
				}
				if knownRoundingDeviations[c.vector] {
					if d := round1(want[0] - have[0]); d != 0.1 {
						t.Errorf("%s: known rounding deviation changed: got %v (go-cvss fixed? remove it from knownRoundingDeviations)", c.line, have)
					}
					continue
				}
				for i := range want {
					if have[i] != want[i] {
						t.Errorf("%s: scores %v, want %v", c.line, have, want)
						failures++
						break
					}
				}
				if c.severity != "" && string(got.Severity) != c.severity {
					t.Errorf("%s: severity %s, want %s", c.line, got.Severity, c.severity)
				}
				if failures > 20 {
					t.Fatal("too many failures")
				}
			}
		})
	}
	t.Logf("%d vectors checked", total)
}

func TestCVSSWords(t *testing.T) {
	c, err := ParseCVSS("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:H/I:L/A:N/E:P")
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != "3.1" || c.ScoreString() != "8.2" || c.Severity != SeverityHigh {
		t.Fatalf("got %s %s %s", c.Version, c.ScoreString(), c.Severity)
	}
	want := []string{
		"Attack Vector (AV): Network",
		"Attack Complexity (AC): Low",
		"Privileges Required (PR): None",
		"User Interaction (UI): Required",
		"Scope (S): Changed",
		"Confidentiality Impact (C): High",
		"Integrity Impact (I): Low",
		"Availability Impact (A): None",
		"Exploit Code Maturity (E): Proof-of-Concept",
	}
	if len(c.Metrics) != len(want) {
		t.Fatalf("%d metrics, want %d", len(c.Metrics), len(want))
	}
	for i, m := range c.Metrics {
		if m.String() != want[i] {
			t.Errorf("metric %d: %q, want %q", i, m, want[i])
		}
	}
	if len(c.BaseMetrics()) != 8 {
		t.Errorf("base metrics: %d", len(c.BaseMetrics()))
	}

	c, err = ParseCVSS("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N")
	if err != nil {
		t.Fatal(err)
	}
	if c.ScoreString() != "9.3" || c.Severity != SeverityCritical || c.Nomenclature != "CVSS-B" {
		t.Fatalf("got %s %s %s", c.ScoreString(), c.Severity, c.Nomenclature)
	}
	if got := c.Metrics[5].String(); got != "Vulnerable System Confidentiality Impact (VC): High" {
		t.Errorf("VC: %q", got)
	}
}

func TestCVSSErrorsNameTheMetric(t *testing.T) {
	for _, tc := range []struct {
		vector, metric, text string
	}{
		{"CVSS:3.1/AV:Q/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "AV", `invalid value "Q"`},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", "A", "missing"},
		{"CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "AV", "more than once"},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/ZZ:1", "ZZ", "unknown metric"},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:Z", "E", `invalid value "Z"`},
		{"CVSS:4.0/AC:L/AV:N/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", "AV", "out of order"},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N", "SA", "missing"},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:H/I:L/A:N/RL:W/E:Z", "E", "Exploit Code Maturity"},
		{"CVSS:2.0/AV:N", "", "unsupported CVSS version"},
		{"AV:N/AC:L", "", "must start with"},
		{"CVSS:3.1/AV:N/AC", "", "malformed part"},
		{"", "", "must start with"},
	} {
		_, err := ParseCVSS(tc.vector)
		var ve *VectorError
		if !errors.As(err, &ve) {
			t.Errorf("%q: error %v, want *VectorError", tc.vector, err)
			continue
		}
		if ve.Metric != tc.metric || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%q: %v (metric %q), want metric %q and %q", tc.vector, err, ve.Metric, tc.metric, tc.text)
		}
	}
}
