package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/spam"
	"github.com/cvd-project/cvd/store"
)

const triageUsage = `cvd triage COMMAND [ID] [--config FILE]:
  list        the reports waiting in triage (over the intake's limits, or spam)
  show ID     one of them: sender, source, subject, size, why it waits
  accept ID   open its incident as if the report had just arrived
  drop ID     remove it (the message stays in the spool, marked dropped)`

// intakePolicy is the configured intake policy, with rspamd when set.
func intakePolicy(c *config.Config) embargo.IntakePolicy {
	p := embargo.IntakePolicy{PerSender: c.Intake.PerSender, PerNetwork: c.Intake.PerNetwork, Window: c.Intake.Window,
		IPv4Prefix: c.Intake.IPv4Prefix, IPv6Prefix: c.Intake.IPv6Prefix, DigestEvery: c.Intake.DigestEvery}
	if c.Spam.RspamdURL != "" {
		r := &spam.Rspamd{URL: c.Spam.RspamdURL, Client: &http.Client{Timeout: c.Spam.Timeout}}
		threshold := c.Spam.Threshold
		p.Spam = func(ctx context.Context, sm *store.SpooledMessage) (float64, bool, error) {
			res, err := r.Check(ctx, sm.Raw, spam.Envelope{IP: sm.RemoteAddr, Helo: sm.Helo, MailFrom: sm.MailFrom, Rcpts: sm.Rcpts})
			if err != nil {
				return 0, false, err
			}
			return res.Score, res.Score >= threshold || res.Action == "reject", nil
		}
	}
	return p
}

func cmdTriage(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("triage: a command is required\n%s: %w", triageUsage, errUsage)
	}
	sub := args[0]
	fs := newFlags("triage " + sub)
	cfgPath := fs.String("config", "", "configuration file")
	pos, err := splitArgs(fs, args[1:])
	if err != nil {
		return err
	}
	var id int64
	switch sub {
	case "list":
		if len(pos) != 0 {
			return fmt.Errorf("triage list takes no argument: %w", errUsage)
		}
	case "show", "accept", "drop":
		if len(pos) != 1 {
			return fmt.Errorf("triage %s: one ID is required\n%s: %w", sub, triageUsage, errUsage)
		}
		if id, err = strconv.ParseInt(pos[0], 10, 64); err != nil || id <= 0 {
			return fmt.Errorf("triage %s: %q is not a triage ID (a number from 'cvd triage list'): %w", sub, pos[0], errUsage)
		}
	default:
		return fmt.Errorf("triage: unknown command %q\n%s: %w", sub, triageUsage, errUsage)
	}
	return withDesk(*cfgPath, func(ctx context.Context, d *embargo.Desk) error {
		switch sub {
		case "list":
			ts, err := d.TriageList(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tRECEIVED\tFROM\tSOURCE\tSIZE\tREASON")
			for _, t := range ts {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", t.ID, t.ReceivedAt.Format(time.RFC3339), t.Sender, t.Source, t.Size, t.Reason)
			}
			return tw.Flush()
		case "show":
			t, err := d.TriageGet(ctx, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "triage:   %d\nspool:    %d\nreceived: %s\nfrom:     %s\nsource:   %s\nsubject:  %s\nsize:     %d bytes\nreason:   %s\n",
				t.ID, t.SpoolID, t.ReceivedAt.Format(time.RFC3339), t.Sender, t.Source, t.Subject, t.Size, t.Reason)
			if t.HasScore {
				fmt.Fprintf(stdout, "score:    %.2f\n", t.Score)
			}
			return nil
		case "accept":
			inc, err := d.TriageAccept(ctx, id, embargo.CLI(operator()))
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "report %d accepted: incident %s opened\n", id, inc)
			return nil
		default:
			if err := d.TriageDrop(ctx, id, embargo.CLI(operator())); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "report %d dropped\n", id)
			return nil
		}
	})
}
