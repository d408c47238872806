// Command cvd runs an open-source project's security response over email.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/cvd-project/cvd/store"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

const usage = `cvd runs a project's security response over email.

Usage: cvd [--as NAME] COMMAND ...
  --as NAME names the operator in the records of what a command changes
  (incident history, key history); default: the OS user.

Commands:
  cvd serve [--config FILE] [--log-format text|json]
        Run the SMTP intake, IMAP and the public site. Without --config
        (or CVD_CONFIG) cvd reads ./cvd.toml, or else uses the embedded
        default: domain localhost, data in ./cvd-data, SMTP on
        127.0.0.1:2525, the site on 127.0.0.1:8080, outbound mail kept in
        a local Maildir.
  cvd init --dir DIR --domain DOMAIN [--project NAME] [--key-type curve25519|rsa4096] [--force]
        Write DIR/cvd.toml, the project's OpenPGP key for security@DOMAIN
        ("NAME security team") and a self-signed TLS certificate.
  cvd spool list [--config FILE] [--limit N]
        Show the newest received messages (no content).
  cvd queue list|retry ID|drop ID [--config FILE] [--all] [--limit N]
        Show outbound mail (id, recipient, state, attempts, next try, last
        reply), make a row due now, or delete it.
  cvd audit [--config FILE] [--limit N]
        What operators did outside incident timelines (queue retry and drop,
        triage accept and drop, member password), with who did it.
  cvd cvss VECTOR
        Score a CVSS v3.1 or v4.0 vector and print its metrics in words.
  cvd list create NAME [--config FILE] [--title T] [--kind incident|announce] [--allow-unsigned]
        Create a list; an incident list's address is security+NAME@DOMAIN.
  cvd member add LIST EMAIL --role ROLE [--key FILE] [--name NAME] [--replace-key]
        A downstream added to a pre-notified incident gets the notice, its
        files and the posts since, at once.
  cvd member remove LIST EMAIL [--config FILE]   queued copies not yet delivered to EMAIL are dropped
  cvd member list LIST [--config FILE]
  cvd member key EMAIL --key FILE [--replace-key] [--config FILE]
        Add a member (pinning their OpenPGP key) or show a list's members.
  cvd member password EMAIL [--config FILE]
        Give a member a new IMAP password (for reading their archive), sent
        to them sealed to their key; the old one stops working.
  cvd incident list|show|thread|patches|confirm|reject|cve|cvss|versions|credit|set|embargo|notify|at-risk|public-notice|publish|close|report|export|vex|decide ID ...
        Run incidents: see 'cvd incident' for every command. Works while
        the server runs.
  cvd incident decide ID TOPIC=VALUE ... | cvd incident notify ID --category CATEGORY
        Release decisions (patches, tests, exploit, discussion,
        public-issue), reminded when due; pre-notify a roster category.
  cvd agenda [--config FILE]
        Every open incident's next deadline (escalation, reminder,
        pre-notification, release), soonest first; mailed to the team,
        encrypted, every embargo.agenda_every.
  cvd triage list|show ID|accept ID|drop ID [--config FILE]
        Reports held by the intake policy (rate limits, spam score) instead
        of opening an incident: list them, show one, open its incident, or
        drop it.
  cvd webhook list [--all] | cvd webhook retry ID [--config FILE]
        Show the release events queued for the [[announce.webhook]]
        endpoints (endpoint, state, attempts, next try, last reply), or
        make one due now.
  cvd key list | key rotate | key revoke FINGERPRINT --reason TEXT [--compromised] [--config FILE]
        Show the project key and its history; replace it by a new key
        certified by it (the old one still reads mail sent to it, members
        are mailed the new key signed by the old); revoke a retired key
        (published with the site's keys).
  cvd deps check [--config FILE]
        Match the [[components]] of cvd.toml (lockfiles, or name, ecosystem
        and version) against OSV advisories (deps.osv_api or deps.osv_data);
        a new match opens a dependency incident for the team.
  cvd site build [DIR] [--config FILE]
        Write the public site (security.txt, WKD, advisories, feed) as
        static files to DIR (default web.static_dir).
  cvd templates export DIR [--force] | cvd templates check DIR
        Write the embedded notice templates to DIR for editing, or check
        the templates in DIR (errors with file and line; exit 1).
  cvd dns [--config FILE]
        Print the DNS records the domain needs (MX, SPF, DKIM, DMARC,
        optional MTA-STS and TLS-RPT), ready to paste into the zone.
  cvd doctor [--config FILE] [--resolver HOST:PORT]
        Check a live setup: DNS records, TLS certificate, project key,
        security.txt, delivery, free disk. Exit 1 when anything is wrong.
  cvd backup FILE [--config FILE] [--to KEYFILE]
        Write a consistent backup while the server runs: the database,
        the configuration and every key and file it names, in one
        archive; --to encrypts it to an administrator's OpenPGP key.
  cvd restore FILE|- --dir DIR
        Unpack a backup into the new folder DIR, checked, ready for
        'cvd serve --config DIR/cvd.toml'.
  cvd retention run [--config FILE] [--dry-run]
        Purge now what [retention] allows (also done hourly by 'cvd
        serve'): raw spooled mail and delivered copies no one needs.
  cvd version
        Print the version and the VCS revision it was built from.
  cvd help
        Print this text.
`

// errUsage marks errors that are answered with the usage text and exit 2.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	args, err := takeOperator(args)
	if err != nil {
		fmt.Fprintf(stderr, "cvd: %v\n\n%s", err, usage)
		return 2
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		err = cmdServe(args[1:], stderr)
	case "init":
		err = cmdInit(args[1:], stdout, stderr)
	case "spool":
		err = cmdSpool(args[1:], stdout, stderr)
	case "queue":
		err = cmdQueue(args[1:], stdout, stderr)
	case "list":
		err = cmdList(args[1:], stdout, stderr)
	case "member":
		if len(args) > 1 && args[1] == "password" {
			err = cmdMemberPassword(args[2:], stdout, stderr)
		} else {
			err = cmdMember(args[1:], stdout, stderr)
		}
	case "cvss":
		err = cmdCVSS(args[1:], stdout, stderr)
	case "incident":
		err = cmdIncident(args[1:], stdout, stderr)
	case "agenda":
		err = cmdAgenda(args[1:], stdout)
	case "triage":
		err = cmdTriage(args[1:], stdout, stderr)
	case "audit":
		err = cmdAudit(args, stdout)
	case "webhook":
		err = cmdWebhook(args[1:], stdout, stderr)
	case "key":
		err = cmdKey(args[1:], stdout, stderr)
	case "site":
		err = cmdSite(args[1:], stdout, stderr)
	case "deps":
		err = cmdDeps(args[1:], stdout, stderr)
	case "templates":
		err = cmdTemplates(args[1:], stdout, stderr)
	case "dns":
		err = cmdDNS(args[1:], stdout, stderr)
	case "doctor":
		err = cmdDoctor(args[1:], stdout, stderr)
	case "backup":
		err = cmdBackup(args[1:], stdout, stderr)
	case "restore":
		err = cmdRestore(args[1:], stdout, stderr)
	case "retention":
		err = cmdRetention(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "cvd %s (schema %d, %s)\n", versionString(), store.SchemaVersion(), runtime.Version())
		if rev := vcsRevision(); rev != "" {
			fmt.Fprintf(stdout, "revision %s\n", rev)
		}
	case "help", "--help", "-help", "-h":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "cvd: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "cvd: %v\n\n%s", err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "cvd: %v\n", err)
		return 1
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// vcsRevision returns the commit the binary was built from, with its time
// and "(modified)" for a dirty tree, as the Go toolchain recorded it; ""
// when it recorded none (go run, or a build outside a checkout).
func vcsRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	return revision(bi.Settings)
}

func revision(settings []debug.BuildSetting) string {
	var rev, at string
	var dirty bool
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return ""
	}
	if at != "" {
		rev += " " + at
	}
	if dirty {
		rev += " (modified)"
	}
	return rev
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("cvd "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%s: %v: %w", fs.Name(), err, errUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q: %w", fs.Name(), fs.Arg(0), errUsage)
	}
	return nil
}
