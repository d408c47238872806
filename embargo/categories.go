package embargo

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/cvd-project/cvd/store"
)

// RosterCategories are the roster categories a downstream may have: who
// ships the project how (distributions package it, vendors and bundlers
// ship it inside their products, cloud and service providers run it).
var RosterCategories = []string{"distribution", "vendor", "service-provider"}

// byCategory returns the roster entries of category cat, for a selection
// "category=CAT" (notify).
func (d *Desk) byCategory(cat string) ([]Person, error) {
	cat = strings.ToLower(strings.TrimSpace(cat))
	if !slices.Contains(RosterCategories, cat) {
		return nil, refuse("category %q: use %s", cat, strings.Join(RosterCategories, ", "))
	}
	var out []Person
	for _, p := range d.Roster {
		if p.Category == cat {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, refuse("no downstream of category %s in the roster (set category in [[embargo.roster]])", cat)
	}
	return out, nil
}

func (d *Desk) rosterCategory(email string) string {
	for _, p := range d.Roster {
		if strings.EqualFold(p.Email, email) {
			return p.Category
		}
	}
	return ""
}

// writeTold writes who was told, by roster category (post-mortem).
func (d *Desk) writeTold(w io.Writer, in *Incident, ds []store.Downstream) {
	if len(ds) == 0 {
		return
	}
	told := map[string][]string{}
	for _, x := range ds {
		c := d.rosterCategory(x.Email)
		told[c] = append(told[c], orDefault(x.Name, x.Email))
	}
	fmt.Fprintln(w, "Told, by category:")
	for _, c := range append(slices.Clone(RosterCategories), "") {
		names := told[c]
		if c == "" {
			if len(names) == 0 {
				continue
			}
			c = "(no category)"
		}
		line := fmt.Sprintf("  %-32s %d", c, len(names))
		if len(names) > 0 {
			line += ": " + strings.Join(names, ", ")
		}
		fmt.Fprintln(w, line)
	}
}
