package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/store"
)

// withLists opens the configured database and lists service for a command.
func withLists(cfgPath string, fn func(ctx context.Context, svc *lists.Service) error) error {
	ctx := context.Background()
	c, db, err := openDB(ctx, cfgPath, false)
	if err != nil {
		return err
	}
	defer db.Close()
	key, err := loadProjectKey(c)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := listService(c, db, key, log)
	// The configured keys are pinned before a command can use them.
	d, err := newDesk(c, db, key, svc, log)
	if err != nil {
		return err
	}
	if err := d.PinConfigKeys(ctx); err != nil {
		return err
	}
	return fn(ctx, svc)
}

func cmdList(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return fmt.Errorf("list: use 'cvd list create NAME': %w", errUsage)
	}
	fs := newFlags("list create")
	cfgPath := fs.String("config", "", "configuration file")
	title := fs.String("title", "", "title of the list")
	kind := fs.String("kind", store.ListIncident, "incident or announce")
	allowUnsigned := fs.Bool("allow-unsigned", false, "distribute members' unsigned posts, marked 'sender not verified'")
	if len(args) < 2 {
		return fmt.Errorf("list create: NAME is required: %w", errUsage)
	}
	name := args[1]
	if err := parseFlags(fs, args[2:]); err != nil {
		return err
	}
	if lists.IncidentName(name) {
		return fmt.Errorf("list create %s: names of the form YYYY-NNN are incident IDs, given by cvd when a report opens an incident; choose another name", name)
	}
	return withLists(*cfgPath, func(ctx context.Context, svc *lists.Service) error {
		if _, err := svc.CreateList(ctx, name, *kind, *title); err != nil {
			return err
		}
		if *allowUnsigned {
			if err := svc.SetAllowUnsigned(ctx, name, true); err != nil {
				return err
			}
		}
		fmt.Fprintf(stdout, "created list %s: %s\n", name, svc.Address(name))
		return nil
	})
}

func cmdMember(args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 || (args[0] != "add" && args[0] != "list" && args[0] != "key" && args[0] != "remove") {
		return fmt.Errorf("member: use 'cvd member add LIST EMAIL --role ROLE --key FILE', 'cvd member remove LIST EMAIL', 'cvd member list LIST' or 'cvd member key EMAIL --key FILE': %w", errUsage)
	}
	sub, list := args[0], args[1]
	fs := newFlags("member " + sub)
	cfgPath := fs.String("config", "", "configuration file")
	if sub == "key" {
		email := list
		keyFile := fs.String("key", "", "file with the armored public key")
		replace := fs.Bool("replace-key", false, "replace a different key pinned for EMAIL (recorded in the key history)")
		if err := parseFlags(fs, args[2:]); err != nil {
			return err
		}
		if *keyFile == "" {
			return fmt.Errorf("member key: --key is required: %w", errUsage)
		}
		key, err := os.ReadFile(*keyFile)
		if err != nil {
			return fmt.Errorf("member key: %w", err)
		}
		return withLists(*cfgPath, func(ctx context.Context, svc *lists.Service) error {
			done, err := svc.PinKey(ctx, email, key, *replace, cliActor())
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "pinned the key for %s\n", strings.ToLower(email))
			for _, d := range done {
				fmt.Fprintln(stdout, d)
			}
			return nil
		})
	}
	if sub == "remove" {
		if len(args) < 3 {
			return fmt.Errorf("member remove: LIST and EMAIL are required: %w", errUsage)
		}
		email := args[2]
		if err := parseFlags(fs, args[3:]); err != nil {
			return err
		}
		return withLists(*cfgPath, func(ctx context.Context, svc *lists.Service) error {
			dropped, err := svc.RemoveMember(ctx, list, email, cliActor())
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "removed %s from %s\n", strings.ToLower(email), list)
			if dropped != "" {
				fmt.Fprintln(stdout, dropped)
			}
			return nil
		})
	}
	if sub == "list" {
		if err := parseFlags(fs, args[2:]); err != nil {
			return err
		}
		return withLists(*cfgPath, func(ctx context.Context, svc *lists.Service) error {
			return printMembers(ctx, svc, list, stdout)
		})
	}
	if len(args) < 3 {
		return fmt.Errorf("member add: LIST and EMAIL are required: %w", errUsage)
	}
	email := args[2]
	role := fs.String("role", "", "reporter, coordinator, fixer, downstream, observer (subscriber on announce lists)")
	name := fs.String("name", "", "display name")
	keyFile := fs.String("key", "", "file with the member's armored public key")
	replace := fs.Bool("replace-key", false, "replace a different key pinned for EMAIL (recorded in the key history)")
	if err := parseFlags(fs, args[3:]); err != nil {
		return err
	}
	if *role == "" {
		return fmt.Errorf("member add: --role is required: %w", errUsage)
	}
	var key []byte
	if *keyFile != "" {
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			return fmt.Errorf("member add: %w", err)
		}
		key = b
	}
	nm := lists.NewMember{Email: email, Name: *name, Role: *role, Key: key, ReplaceKey: *replace, Actor: cliActor()}
	if strings.EqualFold(*role, lists.RoleDownstream) {
		if done, err := addDownstream(*cfgPath, list, nm, stdout); done || err != nil {
			return err
		}
	}
	return withLists(*cfgPath, func(ctx context.Context, svc *lists.Service) error {
		m, err := svc.AddMember(ctx, list, nm)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added %s to %s as %s\n", m.Email, list, m.Role)
		if key == nil {
			fmt.Fprintf(stdout, "note: no key given; %s gets only notices until a key is pinned\n", m.Email)
		}
		return nil
	})
}

func printMembers(ctx context.Context, svc *lists.Service, list string, w io.Writer) error {
	var ms []store.Member
	keys := map[string]string{}
	err := svc.DB.Read(ctx, func(tx *sql.Tx) error {
		l, err := store.ListByNameTx(ctx, tx, list)
		if err != nil {
			return err
		}
		if ms, err = store.MembersTx(ctx, tx, l.ID); err != nil {
			return err
		}
		for _, m := range ms {
			if k, err := store.KeyForListTx(ctx, tx, l.ID, m.Email); err == nil {
				keys[m.Email] = k.Fingerprint
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EMAIL\tROLE\tSTATE\tKEY\tADDED")
	for _, m := range ms {
		state := m.State
		if m.StateReason != "" {
			state += " (" + m.StateReason + ")"
		}
		key := keys[m.Email]
		if key == "" {
			key = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Email, m.Role, state, key, m.AddedAt.Format(time.DateOnly))
	}
	return tw.Flush()
}
