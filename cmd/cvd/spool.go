package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

func cmdSpool(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "list" {
		return fmt.Errorf("spool: use 'cvd spool list': %w", errUsage)
	}
	fs := newFlags("spool list")
	cfgPath := fs.String("config", "", "configuration file")
	limit := fs.Int("limit", 20, "number of messages to show")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	ctx := context.Background()
	_, db, err := openDB(ctx, *cfgPath, true)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.ListSpool(ctx, *limit)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRECEIVED\tFROM\tTO\tSIZE\tSTATE")
	for _, r := range rows {
		from := r.MailFrom
		if from == "" {
			from = "<>"
		}
		state := r.State
		if !r.PurgedAt.IsZero() {
			state += ", purged " + r.PurgedAt.Format("2006-01-02")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.ReceivedAt.Format(time.RFC3339), from, r.Rcpts, r.Size, state)
	}
	return tw.Flush()
}
