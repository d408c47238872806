package embargo

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/store"
)

// Keywords are the incident keywords HandleKeyword knows.
var Keywords = []string{"ack", "triage", "confirm", "reject", "duplicate", "fixing", "cve", "cvss", "versions", "backport",
	"credit", "title", "description", "type", "cwe", "workaround", "upstream", "reference", "note", "reporter", "embargo", "notify", "publish", "close", "status",
	"decide", "public-notice", "at-risk", "vex"}

// HandleKeyword runs an incident keyword from a verified, signed post to
// an incident list (lists.KeywordHandler). It runs inside the post's
// transaction through the same functions as the CLI; a refused command
// changes nothing (its savepoint is rolled back) and is answered with
// the reason. The reply is what lists sends back after "x-NAME: ".
func (d *Desk) HandleKeyword(ctx context.Context, tx *sql.Tx, c *lists.Command) (string, bool, error) {
	name := c.Keyword.Name
	known := false
	for _, k := range Keywords {
		known = known || k == name
	}
	if !known {
		return "", false, nil
	}
	if c.List == nil || c.List.Kind != store.ListIncident {
		return "refused: only on an incident list", true, nil
	}
	if _, err := tx.ExecContext(ctx, `SAVEPOINT embargo_keyword`); err != nil {
		return "", true, fmt.Errorf("x-%s: %w", name, err)
	}
	actor := Actor{Who: c.Sender.Email, Signer: c.Signer, Role: c.Sender.Role}
	o, err := d.beginOp(ctx, tx, c.List.Name, actor)
	if err == nil {
		if !c.Now.IsZero() {
			o.now = c.Now.UTC()
		}
		err = d.keyword(&Op{o}, name, c.Keyword.Args, c.Attached)
	}
	if err != nil {
		if !IsRefusal(err) {
			return "", true, fmt.Errorf("x-%s on %s: %w", name, c.List.Name, err)
		}
		if _, rerr := tx.ExecContext(ctx, `ROLLBACK TO embargo_keyword`); rerr != nil {
			return "", true, fmt.Errorf("x-%s: %w", name, rerr)
		}
		if _, rerr := tx.ExecContext(ctx, `RELEASE embargo_keyword`); rerr != nil {
			return "", true, fmt.Errorf("x-%s: %w", name, rerr)
		}
		return fmt.Sprintf("refused: %v", err), true, nil
	}
	if _, err := tx.ExecContext(ctx, `RELEASE embargo_keyword`); err != nil {
		return "", true, fmt.Errorf("x-%s: %w", name, err)
	}
	if o.released {
		d.log().Info("incident released by keyword", "incident", o.in.ID)
	}
	return orDefault(strings.Join(o.notes, "\n"), "ok"), true, nil
}

// keyword dispatches one keyword with its arguments.
func (d *Desk) keyword(p *Op, name, args string, attached []byte) error {
	args = strings.TrimSpace(args)
	switch name {
	case "ack":
		return p.Ack()
	case "triage":
		return p.Triage()
	case "confirm":
		return p.Confirm(strings.ToLower(args))
	case "reject":
		return p.Reject(args)
	case "duplicate":
		return p.Duplicate(args)
	case "fixing":
		return p.Fixing()
	case "cve":
		return p.SetCVE(args)
	case "cvss":
		return p.SetCVSS(args)
	case "versions":
		pkg, kv := parseKV(args)
		if kv["clear"] == "yes" {
			return p.ClearVersions()
		}
		return p.Versions(pkg, kv["introduced"], kv["fixed"], kv["type"])
	case "backport":
		v, decision, _ := strings.Cut(args, " ")
		return p.Backport(v, decision)
	case "credit":
		n, typ := args, ""
		if i := strings.LastIndex(args, "("); i > 0 && strings.HasSuffix(args, ")") {
			n, typ = strings.TrimSpace(args[:i]), args[i+1:len(args)-1]
		}
		return p.Credit(n, typ, false)
	case "title", "type", "cwe", "upstream", "reference", "workaround", "description", "note":
		v := args
		if v == "" && (name == "description" || name == "workaround" || name == "note") {
			// The post without its keyword lines: a text entity's body.
			if _, body, ok := strings.Cut(string(attached), "\r\n\r\n"); ok {
				attached = []byte(body)
			}
			v = strings.TrimSpace(strings.ReplaceAll(string(attached), "\r\n", "\n"))
		}
		if name == "type" {
			return p.Set("type", v)
		}
		return p.Set(name, v)
	case "reporter":
		return p.Set("reporter", args)
	case "embargo":
		if strings.EqualFold(args, "propose") || args == "" {
			t := p.ProposeDate()
			p.o.note("proposed public date: %s (x-embargo: %s)", utc(t), t.Format("2006-01-02T15:04Z"))
			return nil
		}
		date, override, _ := strings.Cut(args, " override:")
		t, err := ParseDate(date)
		if err != nil {
			return refuse("%v", err)
		}
		return p.SetEmbargo(t, override)
	case "notify":
		var sel []string
		for _, s := range strings.Split(args, ",") {
			if s = strings.TrimSpace(s); s != "" {
				sel = append(sel, s)
			}
		}
		files, err := postedFiles(attached)
		if err != nil {
			return err
		}
		return p.Notify(sel, files...)
	case "publish":
		force := false
		if f, rest, _ := strings.Cut(args, " "); strings.EqualFold(f, "force") {
			force, args = true, strings.TrimSpace(rest)
		}
		first, reason, _ := strings.Cut(args, " ")
		return p.Publish(strings.EqualFold(first, "now"), reason, force)
	case "close":
		return p.Close()
	case "decide":
		return p.Decide(strings.Fields(args))
	case "public-notice":
		return p.PublicNotice()
	case "at-risk":
		return p.AtRisk(args)
	case "vex":
		return p.VEXKeyword(args)
	case "status":
		p.o.note("%s", p.o.d.Status(p.o.in))
		return nil
	}
	return refuse("unknown keyword x-%s", name)
}

// parseKV splits "NAME k=v k=v" into NAME and the pairs.
func parseKV(s string) (string, map[string]string) {
	kv := map[string]string{}
	var first string
	for _, f := range strings.Fields(s) {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[strings.ToLower(k)] = v
		} else if f == "clear" {
			kv["clear"] = "yes"
		} else if first == "" {
			first = f
		}
	}
	return first, kv
}

// Status is a short summary of the incident for replies and the CLI.
func (d *Desk) Status(in *Incident) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s, %s", in.ID, in.State, in.Privacy)
	if in.Facts.CVE != "" {
		fmt.Fprintf(&b, ", %s", in.Facts.CVE)
	}
	if in.Facts.Dependency != nil {
		fmt.Fprintf(&b, ", dependency advisory %s", in.Facts.Dependency.Advisory)
	}
	if !in.EmbargoAt.IsZero() {
		fmt.Fprintf(&b, ", public date %s", utc(in.EmbargoAt))
		if in.State == store.IncidentPrenotified {
			fmt.Fprintf(&b, " (in %s)", in.EmbargoAt.Sub(d.now()).Truncate(time.Minute))
		}
	}
	return b.String()
}
