package deps

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/google/osv-scalibr/semantic"
)

// Match is one advisory that affects components the project ships.
type Match struct {
	Advisory *Advisory
	// Components are the affected components, each at its version.
	Components []Component
	// Ranges describe the affected ranges of the matched packages, e.g.
	// "rack (RubyGems): >= 2.1.0, < 2.1.4.4".
	Ranges []string
}

// CheckEcosystem reports whether versions of ecosystem can be compared.
func CheckEcosystem(ecosystem string) error {
	if _, err := semantic.Parse("0", ecosystem); err != nil {
		return fmt.Errorf("ecosystem %q: versions cannot be compared (use an OSV ecosystem name such as Go, npm, PyPI, RubyGems, crates.io, Maven, NuGet, Packagist)", ecosystem)
	}
	return nil
}

// MatchAll returns the advisories that affect at least one component,
// sorted by advisory ID. Withdrawn advisories match nothing.
func MatchAll(components []Component, advs []*Advisory) []Match {
	var out []Match
	for _, a := range advs {
		if a.IsWithdrawn() {
			continue
		}
		m := Match{Advisory: a}
		ranges := map[string]bool{}
		for _, c := range components {
			for _, af := range a.Affected {
				if !samePackage(c, af) {
					continue
				}
				if !affects(af, c) {
					continue
				}
				if !slices.Contains(m.Components, c) {
					m.Components = append(m.Components, c)
				}
				ranges[describe(af)] = true
			}
		}
		if len(m.Components) == 0 {
			continue
		}
		for r := range ranges {
			m.Ranges = append(m.Ranges, r)
		}
		sort.Strings(m.Ranges)
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Advisory.ID < out[j].Advisory.ID })
	return out
}

// baseEcosystem drops a release suffix ("Debian:12" -> "Debian").
func baseEcosystem(e string) string {
	b, _, _ := strings.Cut(e, ":")
	return b
}

var pypiSep = regexp.MustCompile(`[-_.]+`)

// samePackage reports whether affected entry af names component c. Go
// advisories often name a package inside a module
// (golang.org/x/crypto/ssh): it is matched to the module that holds it.
func samePackage(c Component, af Affected) bool {
	if !strings.EqualFold(baseEcosystem(c.Ecosystem), baseEcosystem(af.Package.Ecosystem)) {
		return false
	}
	name := af.Package.Name
	switch baseEcosystem(c.Ecosystem) {
	case "Go":
		return name == c.Name || strings.HasPrefix(name, c.Name+"/")
	case "PyPI":
		norm := func(s string) string { return pypiSep.ReplaceAllString(strings.ToLower(s), "-") }
		return norm(name) == norm(c.Name)
	case "npm", "crates.io", "RubyGems":
		return name == c.Name
	}
	return strings.EqualFold(name, c.Name)
}

// affects reports whether c's version lies in af's versions or ranges.
func affects(af Affected, c Component) bool {
	v := strings.TrimPrefix(c.Version, "v")
	if slices.Contains(af.Versions, c.Version) || slices.Contains(af.Versions, v) {
		return true
	}
	for _, r := range af.Ranges {
		eco := c.Ecosystem
		switch r.Type {
		case "SEMVER":
			eco = "Go" // plain SemVer 2.0 ordering
		case "ECOSYSTEM":
		default:
			continue
		}
		if inRange(v, eco, r.Events) {
			return true
		}
	}
	return false
}

// inRange applies OSV's evaluation: a version is affected from an
// introduced event up to the next fixed (exclusive) or last_affected
// (inclusive) event, events taken in version order. A version or event
// that cannot be parsed affects nothing.
func inRange(version, eco string, events []Event) bool {
	ver, err := semantic.Parse(version, eco)
	if err != nil {
		return false
	}
	cmp := func(ev string) (int, bool) {
		if ev == "0" {
			return 1, true
		}
		c, err := ver.CompareStr(ev)
		return c, err == nil
	}
	// Events sorted by version ("0" first), as OSV asks evaluators to.
	type ev struct {
		Event
		at string
	}
	var evs []ev
	for _, e := range events {
		at := e.Introduced + e.Fixed + e.LastAffected + e.Limit
		if e.Limit != "" {
			continue
		}
		evs = append(evs, ev{e, at})
	}
	sort.SliceStable(evs, func(i, j int) bool {
		a, b := evs[i].at, evs[j].at
		if a == "0" || b == "0" {
			return a == "0" && b != "0"
		}
		pa, err := semantic.Parse(a, eco)
		if err != nil {
			return false
		}
		c, err := pa.CompareStr(b)
		return err == nil && c < 0
	})
	affected := false
	for _, e := range evs {
		c, ok := cmp(e.at)
		if !ok {
			return false
		}
		switch {
		case e.Introduced != "":
			if c >= 0 {
				affected = true
			}
		case e.Fixed != "":
			if c >= 0 {
				affected = false
			}
		case e.LastAffected != "":
			if c > 0 {
				affected = false
			}
		}
	}
	return affected
}

// describe writes an affected entry's ranges in words.
func describe(af Affected) string {
	var parts []string
	for _, r := range af.Ranges {
		if r.Type == "GIT" {
			continue
		}
		var span []string
		for _, e := range r.Events {
			switch {
			case e.Introduced != "" && e.Introduced != "0":
				span = append(span, ">= "+e.Introduced)
			case e.Introduced == "0":
				span = append(span, "from the first version")
			case e.Fixed != "":
				span = append(span, "< "+e.Fixed)
				parts = append(parts, strings.Join(span, ", "))
				span = nil
			case e.LastAffected != "":
				span = append(span, "<= "+e.LastAffected)
				parts = append(parts, strings.Join(span, ", "))
				span = nil
			}
		}
		if len(span) > 0 {
			parts = append(parts, strings.Join(span, ", ")+" (no fix)")
		}
	}
	if len(af.Versions) > 0 && len(parts) == 0 {
		parts = append(parts, "versions "+strings.Join(af.Versions, ", "))
	}
	return af.Package.Name + " (" + af.Package.Ecosystem + "): " + strings.Join(parts, "; ")
}
