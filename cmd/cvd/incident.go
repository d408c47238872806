package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/publish"
	"github.com/cvd-project/cvd/store"
)

const incidentUsage = `cvd incident COMMAND ID [ARGS] [--config FILE]:
  list                              every incident: state, CVE, publication date, next deadline, title
  show ID [--report]                facts, downstreams and the timeline; --report: the original report, decrypted
  thread ID                         the list's posts in order: who, when, signature, text (decrypted)
  patches ID                        the patches posted to the list, as an mbox for git am
  triage ID                         take a new report
  confirm ID [--privacy private|public|zero-day]
  reject ID REASON                  (the reporter is told the reason)
  duplicate ID OTHER-ID
  fixing ID
  cve ID CVE-YYYY-NNNN | cve ID --request [--to CNA-ADDRESS]  (the request mail; default CNA: cve.request_to)
  cvss ID VECTOR
  versions ID PACKAGE [--introduced V] [--fixed V] [--type SEMVER|ECOSYSTEM|GIT] | versions ID --clear
  backport ID VERSION DECISION
  credit ID NAME|anonymous [--type finder|reporter|...]
  set ID title|description|type|cwe|workaround|upstream|reference|note VALUE  (VALUE "-": stdin; note: internal, never published)
  set ID reporter anonymous|named   keep the reporter's address and name from downstreams and observers
  embargo ID DATE [--override REASON] | embargo ID --propose
  notify ID [--to NAME,NAME] [--attach FILE...]  pre-notify the roster (default: all of it), FILEs sealed with it
  notify ID --category CATEGORY     pre-notify the roster entries of a category (distribution, vendor, service-provider)
  decide ID TOPIC=VALUE ...         release decisions: patches|tests|exploit|discussion=at-release|release+7d|DATE|never,
                                    public-issue=URL; TOPIC=done records that it happened
  at-risk ID --reason REASON        tell every member and downstream the date may move or the issue go public early
  public-notice ID                  a public or zero-day issue: a short notice to the external lists now, before the fix
  publish ID [--now --reason REASON] [--force]  (--force: an incomplete advisory with placeholders)
  close ID
  vex ID not_affected JUSTIFICATION [WHY] | vex ID affected   decide a dependency incident
  report ID                         the post-mortem
  export ID [--format text|cve|osv|csaf|mbox|vex|openvex]  (mbox: the public messages, after release;
                                    vex, openvex: the statement of a dependency incident decided not affected)`

// newDesk builds the incident desk from the configuration: the team's and
// the roster's keys are read from their key files.
func newDesk(c *config.Config, db *store.DB, key *crypto.Key, svc *lists.Service, log *slog.Logger) (*embargo.Desk, error) {
	people := func(key string, cs []config.Contact) ([]embargo.Person, error) {
		var out []embargo.Person
		for i, ct := range cs {
			p := embargo.Person{Name: ct.Name, Email: ct.Email, List: listKind(ct.RosterKind)}
			if ct.KeyFile != "" {
				b, err := os.ReadFile(ct.KeyFile)
				if err != nil {
					return nil, fmt.Errorf("%s: %s[%d].key_file: %w", c.File, key, i+1, err)
				}
				if _, err := crypto.ParseKey(b); err != nil {
					return nil, fmt.Errorf("%s: %s[%d].key_file %s: %w", c.File, key, i+1, ct.KeyFile, err)
				}
				p.Key = b
			}
			out = append(out, p)
		}
		return out, nil
	}
	team, err := people("embargo.team", c.Embargo.Team)
	if err != nil {
		return nil, err
	}
	roster, err := people("embargo.roster", c.Embargo.Roster)
	if err != nil {
		return nil, err
	}
	pol := embargo.DefaultPolicy()
	pol.MinNotice, pol.MaxEmbargo = c.Embargo.MinNotice, c.Embargo.MaxEmbargo
	pol.ReminderBefore, pol.AckEscalation = c.Embargo.ReminderBefore, c.Embargo.AckEscalation
	pol.SubjectPrefix = c.Embargo.SubjectPrefix
	d := &embargo.Desk{DB: db, Lists: svc, Domain: c.Domain, Key: key, Limits: svc.Limits, Policy: pol,
		Team: team, Roster: roster, Announce: c.Embargo.Announce, External: c.Embargo.External,
		Project: publish.Project{Name: c.Embargo.Project, Vendor: c.Embargo.Vendor, Domain: c.Domain, URL: c.Web.BaseURL,
			CNAOrgID: c.CVE.OrgID, CNAShortName: c.CVE.ShortName},
		CVE:                        embargo.CVESettings{CNA: c.CVE.CNA, RequestTo: c.CVE.RequestTo},
		AgendaEvery:                c.Agenda.Every,
		AcknowledgeUnauthenticated: c.Intake.AcknowledgeUnauthenticated,
		IntakePolicy:               intakePolicy(c),
		Log:                        log.With("part", "embargo")}
	svc.PostsFor, svc.OuterSubject = d.PostsFor, d.OuterSubject
	return d, nil
}

// withDesk opens the configured database and desk for a command; it works
// while the server runs (same SQLite file, one writer at a time).
func withDesk(cfgPath string, fn func(ctx context.Context, d *embargo.Desk) error) error {
	c, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	key, err := loadProjectKey(c)
	if err != nil {
		return err
	}
	if err := applyTemplates(c, slog.Default()); err != nil {
		return err
	}
	ctx := context.Background()
	db, err := store.Open(ctx, c.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := listService(c, db, key, log)
	svc.Now = now
	d, err := newDesk(c, db, key, svc, log)
	if err != nil {
		return err
	}
	d.Now = now
	extendDesk(c, d)
	if err := d.PinConfigKeys(ctx); err != nil {
		return err
	}
	return fn(ctx, d)
}

// splitArgs parses flags anywhere among the arguments and returns the
// others in order.
func splitArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%s: %v: %w", fs.Name(), err, errUsage)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func cmdIncident(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("incident: a command is required\n%s: %w", incidentUsage, errUsage)
	}
	sub := args[0]
	fs := newFlags("incident " + sub)
	cfgPath := fs.String("config", "", "configuration file")
	privacy := fs.String("privacy", "", "private, public or zero-day (default: the incident's current privacy, private for a new one)")
	request := fs.Bool("request", false, "print a CVE ID request for the CNA")
	cna := fs.String("to", "", "CVE request: the CNA's address; notify: downstreams by name or address, comma-separated")
	introduced := fs.String("introduced", "", "first affected version")
	fixed := fs.String("fixed", "", "first fixed version")
	rangeType := fs.String("type", "", "versions: SEMVER, ECOSYSTEM or GIT; credit: finder, reporter, ...")
	clear := fs.Bool("clear", false, "versions: forget the recorded versions")
	anonymous := fs.Bool("anonymous", false, "credit without a name")
	override := fs.String("override", "", "embargo: why the date may exceed the maximum embargo (recorded)")
	propose := fs.Bool("propose", false, "embargo: print a compliant date")
	now := fs.Bool("now", false, "publish: break the embargo now")
	reason := fs.String("reason", "", "publish --now: why (recorded and announced); at-risk: why the date is at risk")
	force := fs.Bool("force", false, "publish: release an incomplete advisory, with placeholders for the missing title and description")
	format := fs.String("format", "text", "export: text, cve, osv, csaf, mbox, vex or openvex")
	category := fs.String("category", "", "notify: the roster entries of a category (distribution, vendor, service-provider)")
	original := fs.Bool("report", false, "show: the original report, decrypted from the archive")
	var attach fileList
	fs.Var(&attach, "attach", "notify: a file sent with the pre-notification (a patch, a git bundle, a reproducer); repeat it, or list the files after it")
	pos, err := splitArgs(fs, args[1:])
	if err != nil {
		return err
	}
	need := func(n int, what string) error {
		if len(pos) < n {
			return fmt.Errorf("incident %s: %s is required\n%s: %w", sub, what, incidentUsage, errUsage)
		}
		return nil
	}
	if sub == "list" {
		return withDesk(*cfgPath, func(ctx context.Context, d *embargo.Desk) error { return d.WriteList(ctx, stdout) })
	}
	if err := need(1, "ID"); err != nil {
		return err
	}
	id := pos[0]
	actor := embargo.CLI(operator())
	change := func(fn func(p *embargo.Op) error) error {
		return withDesk(*cfgPath, func(ctx context.Context, d *embargo.Desk) error {
			out, err := d.Do(ctx, id, actor, fn)
			if err != nil {
				return err
			}
			if out != "" {
				fmt.Fprintln(stdout, out)
			}
			return nil
		})
	}
	rest := strings.Join(pos[1:], " ")
	switch sub {
	case "show":
		if *original {
			return withDesk(*cfgPath, func(ctx context.Context, d *embargo.Desk) error {
				p, err := d.OriginalReport(ctx, id)
				if err != nil {
					return err
				}
				return embargo.WriteReport(stdout, p)
			})
		}
		return withDesk(*cfgPath, func(ctx context.Context, d *embargo.Desk) error { return showIncident(ctx, d, id, stdout) })
	case "thread":
		return withDesk(*cfgPath, func(ctx context.Context, d *embargo.Desk) error {
			posts, err := d.Thread(ctx, id)
			if err != nil {
				return err
			}
			return embargo.WriteThread(stdout, posts)
		})
	case "patches":
		return withDesk(*cfgPath, func(ctx context.Context, d *embargo.Desk) error {
			msgs, skipped, err := d.PatchMails(ctx, id)
			if err != nil {
				return err
			}
			if skipped > 0 {
				fmt.Fprintf(stderr, "left out %d patch(es) of held posts (not verified as a member's): see cvd incident thread %s\n", skipped, id)
			}
			if len(msgs) == 0 {
				fmt.Fprintf(stderr, "no patches posted to %s\n", id)
			}
			return publish.WriteMbox(stdout, msgs)
		})
	case "report":
		return withDesk(*cfgPath, func(ctx context.Context, d *embargo.Desk) error { return d.Report(ctx, id, stdout) })
	case "export":
		return withDesk(*cfgPath, func(ctx context.Context, d *embargo.Desk) error { return exportIncident(ctx, d, id, *format, stdout) })
	case "triage":
		return change(func(p *embargo.Op) error { return p.Triage() })
	case "confirm":
		return change(func(p *embargo.Op) error { return p.Confirm(*privacy) })
	case "reject":
		return change(func(p *embargo.Op) error { return p.Reject(rest) })
	case "duplicate":
		return change(func(p *embargo.Op) error { return p.Duplicate(rest) })
	case "fixing":
		return change(func(p *embargo.Op) error { return p.Fixing() })
	case "cve":
		if *request {
			return withDesk(*cfgPath, func(ctx context.Context, d *embargo.Desk) error {
				m, err := d.CVERequest(ctx, id, *cna)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "From: %s\nTo: %s\nSubject: %s\n\n%s", m.From, m.To, m.Subject, m.Body)
				return nil
			})
		}
		if err := need(2, "the CVE ID"); err != nil {
			return err
		}
		return change(func(p *embargo.Op) error { return p.SetCVE(pos[1]) })
	case "cvss":
		if err := need(2, "the vector"); err != nil {
			return err
		}
		return change(func(p *embargo.Op) error { return p.SetCVSS(pos[1]) })
	case "versions":
		if *clear {
			return change(func(p *embargo.Op) error { return p.ClearVersions() })
		}
		if err := need(2, "the package"); err != nil {
			return err
		}
		return change(func(p *embargo.Op) error { return p.Versions(pos[1], *introduced, *fixed, *rangeType) })
	case "backport":
		if err := need(3, "VERSION and DECISION"); err != nil {
			return err
		}
		return change(func(p *embargo.Op) error { return p.Backport(pos[1], strings.Join(pos[2:], " ")) })
	case "credit":
		if !*anonymous {
			if err := need(2, "the name (or --anonymous)"); err != nil {
				return err
			}
		}
		return change(func(p *embargo.Op) error { return p.Credit(rest, *rangeType, *anonymous) })
	case "set":
		if err := need(3, "FIELD and VALUE"); err != nil {
			return err
		}
		value := strings.Join(pos[2:], " ")
		if value == "-" {
			b, err := io.ReadAll(os.Stdin)
			if err != nil {
				return fmt.Errorf("incident set: %w", err)
			}
			value = string(b)
		}
		return change(func(p *embargo.Op) error { return p.Set(pos[1], value) })
	case "embargo":
		if *propose {
			return change(func(p *embargo.Op) error {
				t := p.ProposeDate()
				fmt.Fprintf(stdout, "proposed public date: %s (cvd incident embargo %s %s)\n", t.Format("Monday 2006-01-02 15:04 UTC"), id, t.Format("2006-01-02T15:04Z"))
				return nil
			})
		}
		if err := need(2, "the date (e.g. 2026-12-03T10:00Z) or --propose"); err != nil {
			return err
		}
		date, err := embargo.ParseDate(rest)
		if err != nil {
			return fmt.Errorf("incident embargo: %w", err)
		}
		return change(func(p *embargo.Op) error { return p.SetEmbargo(date, *override) })
	case "notify":
		var sel []string
		for _, s := range strings.Split(*cna, ",") {
			if s = strings.TrimSpace(s); s != "" {
				sel = append(sel, s)
			}
		}
		if *category != "" {
			cs, err := categorySelection(*category)
			if err != nil {
				return err
			}
			sel = append(sel, cs...)
		}
		files, err := readAttachments(attach, pos[1:])
		if err != nil {
			return err
		}
		return change(func(p *embargo.Op) error { return p.Notify(sel, files...) })
	case "publish":
		return change(func(p *embargo.Op) error { return p.Publish(*now, *reason, *force) })
	case "close":
		return change(func(p *embargo.Op) error { return p.Close() })
	case "decide":
		return change(func(p *embargo.Op) error { return p.Decide(pos[1:]) })
	case "public-notice":
		return change(func(p *embargo.Op) error { return p.PublicNotice() })
	case "at-risk":
		return change(func(p *embargo.Op) error { return p.AtRisk(*reason) })
	case "vex":
		return change(func(p *embargo.Op) error { return incidentVEX(p, pos[1:]) })
	}
	return fmt.Errorf("incident: unknown command %q\n%s: %w", sub, incidentUsage, errUsage)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func showIncident(ctx context.Context, d *embargo.Desk, id string, w io.Writer) error {
	in, err := d.Get(ctx, id)
	if err != nil {
		return err
	}
	evs, ds, err := d.Timeline(ctx, in.ID)
	if err != nil {
		return err
	}
	f := in.Facts
	fmt.Fprintf(w, "%s\n", d.Status(in))
	fmt.Fprintf(w, "%-14s %s\n", "List:", d.ListAddress(in.ID))
	reporter := strings.TrimSpace(in.ReporterName + " <" + in.Reporter + ">")
	if in.Reporter == "" {
		reporter = "none"
	}
	fmt.Fprintf(w, "%-14s %s\n", "Reporter:", reporter)
	for _, kv := range [][2]string{{"Title", f.Title}, {"CVE", f.CVE}, {"Type", publish.TypeText(f.ProblemType, f.CWE)},
		{"Upstream", f.UpstreamAdvisory}, {"Override", in.EmbargoOverride}, {"Broken", f.BreakReason}} {
		if kv[1] != "" {
			fmt.Fprintf(w, "%-14s %s\n", kv[0]+":", kv[1])
		}
	}
	for _, v := range f.CVSS {
		if c, err := publish.ParseCVSS(v); err == nil {
			fmt.Fprintf(w, "%-14s %s %s %s\n", "CVSS:", c.ScoreString(), c.Severity, c.Vector)
		}
	}
	for _, p := range f.Packages {
		for _, r := range p.Ranges {
			fmt.Fprintf(w, "%-14s %s from %s, fixed in %s (%s)\n", "Versions:", p.Name, r.Introduced, dash(r.Fixed), r.Type)
		}
	}
	for v, dec := range f.Backports {
		fmt.Fprintf(w, "%-14s %s: %s\n", "Backport:", v, dec)
	}
	for _, c := range f.Credits {
		fmt.Fprintf(w, "%-14s %s (%s)\n", "Credit:", c.DisplayName(), c.Kind().Words())
	}
	d.WriteDecisions(w, in)
	if f.Workaround != "" {
		fmt.Fprintf(w, "Work-around:\n%s\n", f.Workaround)
	}
	if f.Description != "" {
		fmt.Fprintf(w, "Description:\n%s\n", f.Description)
	}
	for _, n := range f.Notes {
		fmt.Fprintf(w, "Note (internal):\n%s\n", n)
	}
	showDependency(w, f.Dependency)
	if f.ReleaseHeld != "" {
		fmt.Fprintf(w, "%-14s %s\n", "Release held:", "the public advisory lacks "+f.ReleaseHeld)
	}
	got, err := d.Received(ctx, in.ID)
	if err != nil {
		return err
	}
	if len(ds) > 0 {
		fmt.Fprintln(w, "Downstreams:")
		for _, x := range ds {
			st := "silent"
			if !x.AckedAt.IsZero() {
				st = "acknowledged " + x.AckedAt.Format("2006-01-02 15:04") + " (" + x.AckHow + ")"
			}
			fmt.Fprintf(w, "  %-30s notified %s, %s; received: %s\n", dash(x.Name)+" <"+x.Email+">", x.NotifiedAt.Format("2006-01-02 15:04"), st,
				strings.Join(append([]string{"notice"}, got[x.Email]...), ", "))
		}
	}
	fmt.Fprintln(w, "Timeline (UTC):")
	embargo.WriteTimeline(w, evs)
	return nil
}

func exportIncident(ctx context.Context, d *embargo.Desk, id, format string, w io.Writer) error {
	if format == "vex" || format == "openvex" {
		return exportVEX(ctx, d, id, format, w)
	}
	if format == "mbox" {
		msgs, err := d.PublicMessages(ctx, id)
		if err != nil {
			return fmt.Errorf("incident export %s: %w", id, err)
		}
		return publish.WriteMbox(w, msgs)
	}
	a, err := d.Advisory(ctx, id)
	if err != nil {
		return err
	}
	var b []byte
	switch format {
	case "text":
		var s string
		s, err = publish.TextAdvisory(a)
		b = []byte(s)
	case "cve":
		b, err = d.CVERecord(ctx, id)
	case "osv":
		b, err = publish.OSV(a)
	case "csaf":
		b, err = publish.CSAF(a)
	default:
		return fmt.Errorf("incident export: format %q: use text, cve, osv, csaf, mbox, vex or openvex: %w", format, errUsage)
	}
	if err != nil {
		return fmt.Errorf("incident export %s: %w", id, err)
	}
	_, err = w.Write(b)
	return err
}

// startScheduler runs the incident scheduler (releases, reminders,
// escalations) in the background; done is called when a pass queued mail.
// stop waits for it to finish.
func startScheduler(ctx context.Context, d *embargo.Desk, done func()) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	s := embargo.NewScheduler(d)
	s.Done = done
	d.Triaged = s.Wake
	fin := make(chan struct{})
	go func() {
		defer close(fin)
		s.Run(ctx)
	}()
	return func() {
		cancel()
		<-fin
	}
}
