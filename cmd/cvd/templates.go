package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/ops"
	"github.com/cvd-project/cvd/templates"
)

const templatesUsage = `cvd templates export DIR [--force] | cvd templates check DIR`

// applyTemplates makes the notices of templates_dir, checked, the ones
// this process renders. Without templates_dir it does nothing.
func applyTemplates(c *config.Config, log *slog.Logger) error {
	if c.TemplatesDir == "" {
		return nil
	}
	set, err := templates.Load(c.TemplatesDir)
	if err != nil {
		return fmt.Errorf("%s: templates_dir: %w", c.File, err)
	}
	set.Log = log.With("part", "templates")
	templates.Use(set)
	return nil
}

func cmdTemplates(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("templates: a command is required (%s): %w", templatesUsage, errUsage)
	}
	sub := args[0]
	fs := newFlags("templates " + sub)
	force := fs.Bool("force", false, "export: overwrite existing files")
	pos, err := splitArgs(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("templates %s: one folder is required (%s): %w", sub, templatesUsage, errUsage)
	}
	dir := pos[0]
	switch sub {
	case "export":
		return exportTemplates(dir, *force, stdout)
	case "check":
		problems, err := templates.Check(dir)
		if err != nil {
			return err
		}
		for _, p := range problems {
			fmt.Fprintln(stdout, p)
		}
		if len(problems) > 0 {
			return fmt.Errorf("templates check: %d problem(s) in %s", len(problems), dir)
		}
		fmt.Fprintf(stdout, "%s: every notice template renders\n", dir)
		return nil
	default:
		return fmt.Errorf("templates: unknown command %q (%s): %w", sub, templatesUsage, errUsage)
	}
}

// exportTemplates writes every embedded notice to dir as NAME.txt.
func exportTemplates(dir string, force bool, stdout io.Writer) error {
	if !force {
		for _, n := range templates.Names() {
			if f := filepath.Join(dir, n+".txt"); exists(f) {
				return fmt.Errorf("templates export: %s exists; use --force to overwrite the files in %s", f, dir)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("templates export: %w", err)
	}
	for _, n := range templates.Names() {
		b, err := templates.Embedded(n)
		if err != nil {
			return err
		}
		if err := ops.WriteFile(filepath.Join(dir, n+".txt"), b, 0o644, true); err != nil {
			return fmt.Errorf("templates export: %w", err)
		}
	}
	fmt.Fprintf(stdout, "wrote %d notice templates to %s; edit them, keep only those you change, and set templates_dir\n", len(templates.Names()), dir)
	return nil
}
