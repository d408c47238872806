package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// cmdAudit prints the operator log: what was done with the CLI outside
// incident timelines, and by whom.
func cmdAudit(args []string, stdout io.Writer) error {
	fs := newFlags("audit")
	cfgPath := fs.String("config", "", "configuration file")
	limit := fs.Int("limit", 100, "show at most the newest N entries (0: all)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	ctx := context.Background()
	_, db, err := openDB(ctx, *cfgPath, true)
	if err != nil {
		return err
	}
	defer db.Close()
	es, err := db.OperatorEvents(ctx, *limit)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tWHO\tACTION\tSUBJECT\tDETAIL")
	for _, e := range es {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.At.Format(time.RFC3339), e.Actor, e.Action, e.Subject, strings.Join(strings.Fields(e.Detail), " "))
	}
	return tw.Flush()
}
