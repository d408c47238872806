package config

import (
	"fmt"
	"strings"
)

// Example returns a commented cvd.toml for domain, as written by "cvd init".
// Its values are the defaults; data_dir is the folder holding the file.
func Example(domain string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	if err := checkDomain(d); err != nil {
		return "", fmt.Errorf("domain: %w", err)
	}
	return strings.ReplaceAll(exampleText, "DOMAIN", d), nil
}

const exampleText = `# cvd configuration. Relative paths are taken from data_dir, and data_dir
# from the folder of this file. Every key below shows its default; delete a
# line to keep the default.

# The project's mail domain: cvd receives security@DOMAIN,
# security+INCIDENT@DOMAIN and announce@DOMAIN.
domain = "DOMAIN"

# This server's host name, used in the SMTP greeting. Default: the domain.
# hostname = "mail.DOMAIN"

# Folder for the database, the keys, the TLS certificate and the outbox.
data_dir = "."

# SQLite database file.
database = "cvd.db"

# A folder of notice templates (NAME.txt) that replace the embedded ones:
# 'cvd templates export DIR' writes the defaults to edit, 'cvd templates
# check DIR' tests them. Default: none, the embedded notices only.
# templates_dir = "templates"

[smtp]
# Address for incoming mail. Use ":25" to take mail from the Internet, or a
# loopback port behind an MTA that hands security* and announce* to cvd.
listen = "127.0.0.1:2525"
# Larger messages are refused with 552.
max_message_size = "25MiB"
# Work cvd does on one message: MIME parts, MIME nesting, and the size of
# its decrypted (decompressed) content. A report over a limit is not
# distributed: it goes to the coordinators as received, sealed.
# max_mime_parts = 512
# max_mime_depth = 16
# max_decrypted_size = "64MiB"
# Recipients per message (more get 452).
max_recipients = 100
# Concurrent connections, in all and from one IP address (more get 421).
max_connections = 200
max_connections_per_ip = 20
# Time allowed for one command, and for a whole DATA transfer.
read_timeout = "10m"
write_timeout = "1m"

[imap]
# Address where members read their archives.
listen = "127.0.0.1:1143"

[tls]
# Certificate offered with STARTTLS ('cvd init' writes a self-signed one;
# replace it with one your members' clients trust).
cert_file = "tls/cert.pem"
key_file = "tls/key.pem"

[pgp]
# The project's OpenPGP key for security@DOMAIN (private, keep it 0600) and
# its public half, for reporters.
key_file = "keys/project.asc"
public_file = "keys/project.pub.asc"

[delivery]
# "outbox": outbound mail is written to a Maildir instead of being sent.
# "smarthost": relayed through the SMTP server below.
# "mx": sent straight to each recipient domain's MX (STARTTLS when offered).
mode = "outbox"
outbox_dir = "outbox"
# The relay for mode = "smarthost", as HOST:PORT.
# smarthost = "smtp.DOMAIN:587"
# "starttls" (port 587/25), "tls" (implicit TLS, port 465), or "none" (only
# for a relay on this machine or a trusted network).
tls = "starttls"
# A relay with a private CA, or reached by IP address: the PEM file of the
# CA its certificate must lead to (instead of the system's roots), and the
# name its certificate carries (default: the host of smarthost).
# ca_file = "relay-ca.pem"
# server_name = "relay.DOMAIN"
# AUTH PLAIN/LOGIN at the smarthost: the user name, and a file holding only
# the password (keep it 0600).
# username = "cvd"
# password_file = "smarthost.password"
# Temporary failures are retried (after 1m, 5m, 30m, 2h, then every 4h)
# until the message is this old; then it fails. Units: s, m, h, d.
max_age = "5d"
# Connections at once to one destination (the smarthost, or one domain).
per_destination = 4
# mx mode: honour recipient domains' MTA-STS policies (RFC 8461): with
# mode enforce, mail goes only over verified TLS to the MX hosts the policy
# names, or waits. require_tls does the same for the domains listed (e.g.
# the distributions' security teams), with or without a policy.
mta_sts = true
# require_tls = ["debian.org", "redhat.com"]

[dkim]
# Every message cvd sends carries two DKIM signatures with d=DOMAIN, one
# RSA-2048 and one Ed25519 (RFC 8463); 'cvd init' makes the keys and
# 'cvd dns' prints the TXT records to publish. A key file set to "" leaves
# that key out.
enabled = true
rsa_selector = "cvd-rsa"
rsa_key_file = "dkim/rsa.pem"
ed25519_selector = "cvd-ed25519"
ed25519_key_file = "dkim/ed25519.pem"
# Header fields signed. Default: From, Sender, Reply-To, To, Cc, Subject,
# Date, Message-ID, In-Reply-To, References, MIME-Version, Content-Type,
# Content-Transfer-Encoding, the List-* fields, Auto-Submitted, Precedence.
# headers = ["From", "To", "Subject", "Date", "Message-ID"]

[dns]
# DNS server for the SPF, DKIM and DMARC checks, as HOST:PORT (e.g. a local
# validating resolver). Default: the system's resolver.
# resolver = "127.0.0.1:53"

[embargo]
# The embargo rules cvd enforces. Units: m, h, d.
# Pre-notification at least this long before the public date.
min_notice = "48h"
# At most this long from the first downstream notice to the public date
# (the distros list's maximum), unless overridden with a recorded reason.
max_embargo = "14d"
# Silent downstreams are reminded this long before the date.
reminder_before = "24h"
# A report nobody of the team took this long is escalated to the team.
ack_escalation = "24h"
# Subject tag of pre-notifications (inside the encryption).
subject_prefix = "[vs]"
# The coordinators get the agenda ('cvd agenda': every open incident's
# next deadline) by mail, encrypted, this often; "0d" for never.
agenda_every = "7d"
# The software and its maintainers, as advisories name them (the vendor
# defaults to the project).
project = "DOMAIN"
# vendor = "The Example Project"
# The announce list, and public lists that get the signed announcement too.
announce = "announce@DOMAIN"
external = []
# external = ["oss-security@lists.openwall.com"]

# The security team: coordinators on every new incident. One block each.
# [[embargo.team]]
# name = "Alice Example"
# email = "alice@DOMAIN"
# key_file = "keys/alice.asc"

# The downstream roster: pre-notified by default ('cvd incident notify'
# or x-notify), each encrypted to its own key.
# category = "distribution", "vendor" (vendors, bundlers) or
# "service-provider" (cloud and service providers) selects entries for
# 'cvd incident notify --category' and groups them in the post-mortem.
# [[embargo.roster]]
# name = "Debian"
# email = "team@security.debian.org"
# key_file = "keys/debian.asc"
# A list of distributions (kind = "list", e.g. the distros list): sealed to
# the list's key, outer Subject "[vs] ...", no reminders, max_embargo
# (default "14d" from the first notice) a hard limit; replies = "accept"
# takes posts from members (addresses or "@domain") as its posts, "hold"
# (the default) holds them for the coordinators.
# [[embargo.roster]]
# name = "distros"
# email = "distros@vs.openwall.org"
# key_file = "keys/distros.asc"
# kind = "list"
# max_embargo = "14d"
# replies = "accept"
# members = ["@debian.org", "security@suse.de"]

[cve]
# Is the project a CVE Numbering Authority? A CNA reserves its own CVE IDs
# (e.g. with cvelib) and submits the CVE record cvd writes
# ('cvd incident export ID --format cve', /advisories/ID.cve.json).
cna = false
# The CNA's organisation ID (a UUID) and short name, as CVE Services knows
# them: the project's own when cna = true (then required), else those of
# the CNA that assigns your IDs (optional: without them no CVE record is
# written, the CNA publishes it).
org_id = ""
short_name = ""
# Not a CNA: the CNA you request IDs from; 'cvd incident cve ID --request'
# writes the request mail to it (or to --to ADDRESS).
request_to = ""

[lists]
# A signed command (x-...) or announcement counts once, and only while its
# signature is younger than this (and at most 15 minutes in the future).
max_signature_age = "7d"

[web]
# The public site: security.txt, the Web Key Directory (so that
# 'gpg --locate-keys security@DOMAIN' finds the project key), advisory
# pages, acknowledgements, an Atom feed, the JSON records, and the
# one-click unsubscribe links of the announce list. "" for no web server
# (e.g. with 'cvd site build' and hosting elsewhere).
listen = "127.0.0.1:8080"
# The site's public URL (put a TLS proxy in front of listen): used for
# security.txt's Canonical, page URLs and unsubscribe links.
base_url = "https://DOMAIN"
# security.txt: Contact URIs (mailto:, https:, tel:), the policy (default:
# the site's policy page, whose text policy_text may replace), the
# preferred languages, and how far ahead Expires lies (units: h, d).
contacts = ["mailto:security@DOMAIN"]
# policy_url = "https://DOMAIN/SECURITY.md"
# policy_text = """
# Report security issues to security@DOMAIN, encrypted to our key.
# """
languages = ["en"]
expires_in = "180d"
# A folder for a static copy of the site, kept current by 'cvd serve' and
# the default of 'cvd site build'. Default: none.
# static_dir = "site"

[intake]
# Automatic mail (acknowledgement, receipt, refusal notice) goes only to a
# sender that authenticated: DMARC pass for its From domain, SPF pass for
# an envelope sender equal to its address, or a good OpenPGP signature by
# a key already pinned for it. Others are taken in all the same, without a
# reply. true acknowledges everyone (backscatter to forged addresses).
acknowledge_unauthenticated = false
# A new report opens an incident only within these limits, per window: from
# one sender (its From address) and from one source network (IPv4 /24,
# IPv6 /64; loopback clients, such as a local MTA, are not counted). 0 is
# no limit. The others wait in triage ('cvd triage list'): no incident, no
# reply; the team gets a sealed digest of them at most every digest_every.
# Replies into an incident's thread are never held.
per_sender = 3
per_network = 10
window = "1h"
ipv4_prefix = 24
ipv6_prefix = 64
digest_every = "1h"

[spam]
# rspamd's normal worker (its /checkv2 API), e.g. "http://127.0.0.1:11333";
# a new report scored at or above threshold (or that rspamd would reject)
# waits in triage. Default: none. When rspamd cannot be reached the
# report is let through and the failure logged.
# rspamd_url = ""
threshold = 6.0
timeout = "10s"

# [[announce.webhook]]
# Each release posts a signed JSON event here (HMAC-SHA256 with the
# secret in secret_file; see contrib/webhook-receiver.py), retried like
# mail until the receiver answers 2xx. Default: none.
# name = "chat"
# url = "https://chat.DOMAIN/hooks/cvd"
# secret_file = "webhook-chat.secret"
# timeout = "10s"

[metrics]
# Prometheus metrics at http://LISTEN/metrics and a health check at
# /healthz (200 when the database and every listener answer, 503 and the
# failed parts otherwise). Off by default; keep it on a private address.
# listen = "127.0.0.1:9425"

[retention]
# How long cvd keeps what it no longer needs (units: d, h); "0d" keeps it
# forever. spool: the raw message of routed mail (a report stays, encrypted,
# in its incident's archive). delivered: the body of a delivered message no
# archive or IMAP mailbox needs (each subscriber's copy of an announcement).
# Nothing of an incident that is not closed is ever purged.
spool = "30d"
delivered = "30d"

[deps]
# Vulnerable dependencies: 'cvd deps check', and 'cvd serve' every
# check_every ("0s": never), match the [[components]] below against OSV
# advisories, from the OSV API or from a folder or zip of OSV records (set
# one of the two). A new match opens a dependency incident for the team.
# Default: neither.
# osv_api = "https://api.osv.dev"
# osv_data = "osv-records.zip"
check_every = "24h"

# What the project ships or bundles: a lockfile (go.mod, package-lock.json,
# Gemfile.lock, Cargo.lock or requirements.txt), or a name, OSV ecosystem
# and version. Default: none.
# [[components]]
# lockfile = "/srv/src/DOMAIN/go.mod"
# [[components]]
# name = "zlib"
# ecosystem = "Debian"
# version = "1:1.2.13.dfsg-1"

[log]
# "text" or "json"; level "debug", "info", "warn" or "error".
format = "text"
level = "info"
`
