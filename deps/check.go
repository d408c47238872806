package deps

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Check is one dependency check: the components (named, and read from
// lockfiles) against the advisories of one source.
type Check struct {
	Components []Component
	Lockfiles  []string
	// OSVData is a folder or zip of OSV records; API the OSV API. One
	// of the two is set.
	OSVData string
	API     *Client
}

// Result is what a check found.
type Result struct {
	Components []Component
	// Advisories is how many records were considered.
	Advisories int
	Matches    []Match
	// Withdrawn are the records read that their publisher withdrew
	// (they match nothing).
	Withdrawn []*Advisory
	// Skipped holds the records that could not be read (RecordErrors);
	// the others were checked.
	Skipped error
}

// Run reads the lockfiles, gets the advisories and matches them.
func (c *Check) Run(ctx context.Context) (*Result, error) {
	res := &Result{Components: append([]Component(nil), c.Components...)}
	for _, comp := range c.Components {
		if err := CheckEcosystem(comp.Ecosystem); err != nil {
			return nil, fmt.Errorf("component %s: %w", comp.Name, err)
		}
	}
	for _, p := range c.Lockfiles {
		cs, err := ReadLockfile(ctx, p)
		if err != nil {
			return nil, err
		}
		res.Components = append(res.Components, cs...)
	}
	var advs []*Advisory
	var err error
	switch {
	case c.OSVData != "" && c.API != nil:
		return nil, errors.New("dependency check: give one source of advisories, not two")
	case c.OSVData != "":
		// A whole database is large: only records naming a shipped
		// package are kept.
		advs, res.Advisories, res.Skipped, err = load(c.OSVData, newPackageSet(res.Components).names)
	case c.API != nil:
		advs, err = c.API.Advisories(ctx, res.Components)
		res.Advisories = len(advs)
	default:
		return nil, errors.New("dependency check: no source of advisories (the OSV API or a folder or zip of OSV records)")
	}
	if err != nil {
		return nil, err
	}
	res.Matches = MatchAll(res.Components, advs)
	for _, a := range advs {
		if a.IsWithdrawn() {
			res.Withdrawn = append(res.Withdrawn, a)
		}
	}
	return res, nil
}

// packageSet answers whether an advisory names one of the components'
// packages, without comparing every record with every component.
type packageSet map[string]bool

func packageKey(eco, name string) string {
	eco = strings.ToLower(baseEcosystem(eco))
	switch eco {
	case "pypi":
		name = pypiSep.ReplaceAllString(strings.ToLower(name), "-")
	case "go", "npm", "crates.io", "rubygems":
	default:
		name = strings.ToLower(name)
	}
	return eco + "\x00" + name
}

func newPackageSet(cs []Component) packageSet {
	s := packageSet{}
	for _, c := range cs {
		s[packageKey(c.Ecosystem, c.Name)] = true
	}
	return s
}

// names reports whether a names one of the packages (for Go, a package
// inside one of the modules).
func (s packageSet) names(a *Advisory) bool {
	for _, af := range a.Affected {
		name := af.Package.Name
		if s[packageKey(af.Package.Ecosystem, name)] {
			return true
		}
		if baseEcosystem(af.Package.Ecosystem) == "Go" {
			for i := strings.LastIndexByte(name, '/'); i > 0; i = strings.LastIndexByte(name, '/') {
				name = name[:i]
				if s[packageKey("Go", name)] {
					return true
				}
			}
		}
	}
	return false
}
