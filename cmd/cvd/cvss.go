package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/cvd-project/cvd/publish"
)

// cmdCVSS implements "cvd cvss VECTOR": it validates and scores a CVSS v3.1
// or v4.0 vector and prints each metric in words.
func cmdCVSS(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("cvss")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("cvss: %v: %w", err, errUsage)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("cvss: want exactly one vector, e.g. cvd cvss CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H: %w", errUsage)
	}
	c, err := publish.ParseCVSS(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("%v: %w", err, errUsage)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CVSS version:  %s\n", c.Version)
	if c.Version == "4.0" {
		fmt.Fprintf(&b, "Score:         %s (%s)\n", c.ScoreString(), c.Nomenclature)
	} else {
		fmt.Fprintf(&b, "Base score:    %s\n", c.ScoreString())
	}
	fmt.Fprintf(&b, "Severity:      %s\n", c.Severity)
	if c.Version != "4.0" {
		for _, m := range c.Metrics {
			if m.Group == "Temporal" {
				fmt.Fprintf(&b, "Temporal:      %.1f (%s)\n", c.TemporalScore, publish.SeverityOf(c.TemporalScore))
				break
			}
		}
		for _, m := range c.Metrics {
			if m.Group == "Environmental" {
				fmt.Fprintf(&b, "Environmental: %.1f (%s)\n", c.EnvironmentalScore, publish.SeverityOf(c.EnvironmentalScore))
				break
			}
		}
	}
	for _, group := range []string{"Base", "Temporal", "Threat", "Environmental", "Supplemental"} {
		header := false
		for _, m := range c.Metrics {
			if m.Group != group {
				continue
			}
			if !header {
				fmt.Fprintf(&b, "%s metrics:\n", group)
				header = true
			}
			fmt.Fprintf(&b, "  %s\n", m)
		}
	}
	_, err = io.WriteString(stdout, b.String())
	return err
}
