package main

import (
	"context"
	"io"

	"github.com/cvd-project/cvd/embargo"
)

func cmdAgenda(args []string, stdout io.Writer) error {
	fs := newFlags("agenda")
	cfgPath := fs.String("config", "", "configuration file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return withDesk(*cfgPath, func(ctx context.Context, d *embargo.Desk) error {
		dues, err := d.Agenda(ctx)
		if err != nil {
			return err
		}
		return embargo.WriteAgenda(stdout, dues, now())
	})
}
