package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/ops"
)

const keyUsage = `cvd key COMMAND [--config FILE]:
  list                          the project key, the retired keys and their history
  rotate                        a new project key, certified by the current one, which
                                is kept to read mail sent to it; members get the new key
  revoke FINGERPRINT --reason TEXT [--compromised]
                                revoke a retired project key; the revocation is published`

func cmdKey(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("key: a command is required\n%s: %w", keyUsage, errUsage)
	}
	sub := args[0]
	fs := newFlags("key " + sub)
	cfgPath := fs.String("config", "", "configuration file")
	reason := fs.String("reason", "", "revoke: why (recorded, and carried by the revocation)")
	compromised := fs.Bool("compromised", false, "revoke: the key's secret leaked (otherwise: superseded)")
	pos, err := splitArgs(fs, args[1:])
	if err != nil {
		return err
	}
	switch {
	case sub == "list" && len(pos) == 0, sub == "rotate" && len(pos) == 0:
	case sub == "revoke" && len(pos) == 1:
		if strings.TrimSpace(*reason) == "" {
			return fmt.Errorf("key revoke: --reason is required (it is recorded and published with the revocation): %w", errUsage)
		}
	default:
		return fmt.Errorf("key: bad command or arguments\n%s: %w", keyUsage, errUsage)
	}
	c, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	switch sub {
	case "rotate":
		old, next, err := ops.RotateProjectKey(c, now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "new project key %s, certified by %s (kept to read mail sent to it)\n", next.Fingerprint(), old.Fingerprint())
		fmt.Fprintf(stdout, "wrote %s and %s\n", c.PGP.KeyFile, c.PGP.PublicFile)
		return withDesk(*cfgPath, func(ctx context.Context, d *embargo.Desk) error {
			n, err := d.AnnounceKeyRotation(ctx, old, next, cliActor())
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "queued the new key, signed by the old one, for %d addresses\n", n)
			fmt.Fprintln(stdout, "restart 'cvd serve' to sign with the new key and publish it (WKD, security.txt)")
			return nil
		})
	case "revoke":
		k, err := ops.RevokeProjectKey(c, pos[0], *reason, *compromised, now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s: %s\nwrote %s and %s\n", k.Fingerprint(), *reason, c.PGP.KeyFile, c.PGP.PublicFile)
		return withDesk(*cfgPath, func(ctx context.Context, d *embargo.Desk) error {
			if err := d.RecordKeyRevocation(ctx, k.Fingerprint(), *reason, cliActor()); err != nil {
				return err
			}
			fmt.Fprintln(stdout, "restart 'cvd serve' to publish the revocation (WKD)")
			return nil
		})
	default:
		k, err := ops.LoadProjectKey(c)
		if err != nil {
			return err
		}
		at := now()
		fmt.Fprintf(stdout, "current  %s  created %s%s\n", k.Fingerprint(), k.Created().UTC().Format(time.DateOnly), expiry(k.Expires()))
		for _, r := range k.Retired() {
			state := "retired"
			if r.Revoked(at) {
				state = "revoked"
			}
			fmt.Fprintf(stdout, "%-8s %s  created %s\n", state, r.Fingerprint(), r.Created().UTC().Format(time.DateOnly))
		}
		return withDesk(*cfgPath, func(ctx context.Context, d *embargo.Desk) error {
			evs, err := d.DB.ProjectKeyEvents(ctx)
			if err != nil {
				return err
			}
			if len(evs) > 0 {
				fmt.Fprintln(stdout, "\nHistory (UTC)")
			}
			for _, e := range evs {
				detail := e.Fingerprint
				if e.NewFingerprint != "" {
					detail += " -> " + e.NewFingerprint
				}
				if e.Reason != "" {
					detail += ": " + e.Reason
				}
				fmt.Fprintf(stdout, "  %s  %-8s %s: %s\n", e.At.Format("2006-01-02 15:04"), e.Kind, e.Actor, detail)
			}
			return nil
		})
	}
}

func expiry(t time.Time) string {
	if t.IsZero() {
		return ", does not expire"
	}
	return ", expires " + t.UTC().Format(time.DateOnly)
}
