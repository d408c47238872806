package deps

import (
	"context"
	"errors"
	"fmt"
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
		advs, res.Skipped, err = Load(c.OSVData)
	case c.API != nil:
		advs, err = c.API.Advisories(ctx, res.Components)
	default:
		return nil, errors.New("dependency check: no source of advisories (the OSV API or a folder or zip of OSV records)")
	}
	if err != nil {
		return nil, err
	}
	res.Advisories = len(advs)
	res.Matches = MatchAll(res.Components, advs)
	return res, nil
}
