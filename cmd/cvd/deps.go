package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/deps"
	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/publish"
)

// cmdDeps runs 'cvd deps check'.
func cmdDeps(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		return fmt.Errorf("deps: use 'cvd deps check': %w", errUsage)
	}
	fs := newFlags("deps check")
	cfgPath := fs.String("config", "", "configuration file")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	c, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if !c.Deps.Configured() {
		return fmt.Errorf("%s: nothing to check: list [[components]] and set deps.osv_api or deps.osv_data", c.File)
	}
	return withDesk(*cfgPath, func(ctx context.Context, d *embargo.Desk) error {
		res, rec, err := d.CheckDependencies(ctx, depsCheck(c))
		if res == nil {
			return fmt.Errorf("deps check: %w", err)
		}
		source := c.Deps.OSVData
		if source == "" {
			source = c.Deps.OSVAPI
		}
		fmt.Fprintf(stdout, "checked %d components against %d advisories (%s)\n", len(res.Components), res.Advisories, source)
		if rec != nil && len(rec.Outcomes) > 0 {
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ADVISORY\tINCIDENT\tCOMPONENTS")
			for i, o := range rec.Outcomes {
				var comps []string
				for _, c := range res.Matches[i].Components {
					comps = append(comps, c.Name+" "+c.Version)
				}
				what := o.Incident + " (opened)"
				if !o.Opened {
					what = o.Incident + " (known"
					if len(o.Added) > 0 {
						what += ", " + fmt.Sprint(len(o.Added)) + " new components"
					}
					what += ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", o.Advisory, what, strings.Join(comps, ", "))
			}
			tw.Flush()
		}
		if rec != nil {
			for _, w := range rec.Withdrawn {
				fmt.Fprintf(stdout, "%s was withdrawn upstream: incident %s marked, its coordinators told\n", w.Advisory, w.Incident)
			}
			fmt.Fprintf(stdout, "%d advisories matched; %d incidents opened\n", len(res.Matches), rec.Opened())
		}
		if err != nil {
			return fmt.Errorf("deps check: %w", err)
		}
		if res.Skipped != nil {
			var n int
			for _, e := range unjoin(res.Skipped) {
				fmt.Fprintf(stderr, "cvd: skipped %v\n", e)
				n++
			}
			return fmt.Errorf("deps check: %d OSV records could not be read (listed above); the others were checked", n)
		}
		return nil
	})
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// depsCheck is the dependency check the configuration describes.
func depsCheck(c *config.Config) *deps.Check {
	ch := &deps.Check{OSVData: c.Deps.OSVData}
	if c.Deps.OSVAPI != "" {
		ch.API = &deps.Client{BaseURL: c.Deps.OSVAPI, UserAgent: "cvd/" + versionString()}
	}
	for _, comp := range c.Deps.Components {
		if comp.Lockfile != "" {
			ch.Lockfiles = append(ch.Lockfiles, comp.Lockfile)
			continue
		}
		ch.Components = append(ch.Components, deps.Component{Ecosystem: comp.Ecosystem, Name: comp.Name, Version: comp.Version})
	}
	return ch
}

// startDepsWatch runs the configured dependency check every
// deps.check_every; done is called when a check opened incidents.
func startDepsWatch(ctx context.Context, c *config.Config, d *embargo.Desk, done func()) (stop func()) {
	if !c.Deps.Configured() || c.Deps.CheckEvery == 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &embargo.DependencyWatch{Desk: d, Check: func() *deps.Check { return depsCheck(c) }, Every: c.Deps.CheckEvery, Done: done}
	fin := make(chan struct{})
	go func() {
		defer close(fin)
		w.Run(ctx)
	}()
	return func() {
		cancel()
		<-fin
	}
}

// incidentVEX runs 'cvd incident vex ID not_affected JUSTIFICATION [WHY]'
// and 'cvd incident vex ID affected'.
func incidentVEX(p *embargo.Op, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("incident vex: give not_affected JUSTIFICATION [WHY] or affected: %w", errUsage)
	}
	return p.VEXKeyword(strings.Join(args, " "))
}

// exportVEX writes a dependency incident's VEX statement.
func exportVEX(ctx context.Context, d *embargo.Desk, id, format string, w io.Writer) error {
	s, err := d.VEX(ctx, id)
	if err != nil {
		return fmt.Errorf("incident export %s: %w", id, err)
	}
	var b []byte
	if format == "openvex" {
		b, err = s.OpenVEX()
	} else {
		b, err = s.CSAF()
	}
	if err != nil {
		return fmt.Errorf("incident export %s: %w", id, err)
	}
	_, err = w.Write(b)
	return err
}

// VEX lists the VEX statements of dependency incidents decided not
// affected (publish.VEXSource).
func (s siteSource) VEX(ctx context.Context) ([]publish.VEXDocument, error) {
	return s.desk.VEXStatements(ctx)
}

// showDependency writes a dependency incident's advisory, components and
// decision for 'cvd incident show'.
func showDependency(w io.Writer, f *embargo.DependencyFacts) {
	if f == nil {
		return
	}
	adv := f.Advisory
	if len(f.Aliases) > 0 {
		adv += " (" + strings.Join(f.Aliases, ", ") + ")"
	}
	fmt.Fprintf(w, "%-14s %s\n", "Dependency:", adv)
	if f.Summary != "" {
		fmt.Fprintf(w, "%-14s %s\n", "Summary:", f.Summary)
	}
	for _, r := range f.Ranges {
		fmt.Fprintf(w, "%-14s %s\n", "Affected:", r)
	}
	for _, c := range f.Components {
		fmt.Fprintf(w, "%-14s %s\n", "Shipped:", c)
	}
	if !f.Withdrawn.IsZero() {
		fmt.Fprintf(w, "%-14s %s\n", "Withdrawn:", "upstream, on "+f.Withdrawn.Format("2006-01-02 15:04 UTC")+": the advisory no longer claims a vulnerability")
	}
	for _, c := range f.Undecided {
		fmt.Fprintf(w, "%-14s %s (found after the decision, which does not cover it)\n", "Shipped:", c)
	}
	switch f.Decision {
	case embargo.NotAffected:
		d := "not affected: " + f.Justification
		if f.Impact != "" {
			d += " (" + f.Impact + ")"
		}
		fmt.Fprintf(w, "%-14s %s\n", "Decision:", d)
	case embargo.Affected:
		d := "affected"
		if !f.Revised.IsZero() {
			d += " (revised " + f.Revised.Format("2006-01-02 15:04 UTC") + "; the VEX statement of " + f.StatementAt.Format("2006-01-02") + " said not affected: " + f.Justification + ")"
		}
		fmt.Fprintf(w, "%-14s %s\n", "Decision:", d)
	default:
		fmt.Fprintf(w, "%-14s %s\n", "Decision:", "none yet (cvd incident vex ID not_affected JUSTIFICATION | affected)")
	}
}
