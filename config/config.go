// Package config reads cvd.toml: it decodes the file, applies defaults and
// validates the result into a typed, immutable Config. Every error names the
// file, the key and what to change.
package config

import (
	"bytes"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// EmbeddedName is the name used for the built-in configuration in messages.
const EmbeddedName = "(embedded default)"

//go:embed default.toml
var defaultTOML []byte

// Config is a validated configuration. Paths are absolute.
type Config struct {
	// File is the path the configuration was read from, or EmbeddedName.
	File string
	// Embedded is true when no file was given and the built-in default is used.
	Embedded bool

	Domain   string
	Hostname string
	DataDir  string
	Database string
	// TemplatesDir holds notice templates (NAME.txt) that replace the
	// embedded ones; "" uses only the embedded notices.
	TemplatesDir string

	SMTP     SMTP
	IMAP     IMAP
	TLS      TLS
	PGP      PGP
	Delivery Delivery
	DKIM     DKIM
	Embargo  Embargo
	CVE      CVE
	Agenda   Agenda
	Lists    Lists
	DNS      DNS
	Web      Web
	Log      Log
	// Intake and Spam are the intake policy (see intake.go).
	Intake Intake
	Spam   Spam
	// Announce is where a release is announced besides mail (webhooks).
	Announce Announce
	Metrics  Metrics
	// Retention is how long routed and delivered mail is kept (see retention.go).
	Retention Retention
	// Deps is the dependency check (see deps.go).
	Deps Deps
}

// Lists configures the lists' posting rules.
type Lists struct {
	// MaxSignatureAge is the oldest a signature on a command or an
	// announcement may be; older ones are refused.
	MaxSignatureAge time.Duration
}

// DNS configures the resolver of the sender checks (SPF, DKIM, DMARC).
type DNS struct {
	// Resolver is the DNS server as HOST:PORT; "" uses the system's.
	Resolver string
}

// SMTP configures the SMTP intake listener.
type SMTP struct {
	Listen              string
	MaxMessageBytes     int64
	MaxRecipients       int
	MaxConnections      int
	MaxConnectionsPerIP int
	ReadTimeout         time.Duration
	WriteTimeout        time.Duration
	// MaxMIMEParts, MaxMIMEDepth and MaxDecryptedBytes bound the work on
	// one message.
	MaxMIMEParts      int
	MaxMIMEDepth      int
	MaxDecryptedBytes int64
}

// IMAP configures the IMAP listener.
type IMAP struct {
	Listen string
}

// TLS names the certificate used for STARTTLS.
type TLS struct {
	CertFile string
	KeyFile  string
}

// PGP names the project's OpenPGP key (the key of security@DOMAIN).
type PGP struct {
	KeyFile    string
	PublicFile string
}

// Delivery configures how outbound mail leaves cvd.
type Delivery struct {
	// Mode is "outbox" (mail is written to the Maildir OutboxDir),
	// "smarthost" (relayed through Smarthost) or "mx" (sent to each
	// recipient domain's MX).
	Mode      string
	OutboxDir string
	// Smarthost is HOST:PORT of the relay; TLS is "starttls", "tls" or
	// "none"; Username and PasswordFile enable AUTH.
	Smarthost string
	TLS       string
	// CAFile, when set, holds the PEM certificates the smarthost's chain
	// must lead to, instead of the system's roots; ServerName is the name
	// its certificate must carry (default: the host of Smarthost).
	CAFile       string
	ServerName   string
	Username     string
	PasswordFile string
	// MaxAge is how long a message is retried.
	MaxAge time.Duration
	// PerDestination bounds the connections to one destination.
	PerDestination int
	// MTASTS applies recipient domains' MTA-STS policies (mx mode).
	MTASTS bool
	// RequireTLS names domains that get mail only over TLS verified for
	// their MX host (mx mode), e.g. the distributions' security teams.
	RequireTLS []string
}

// DKIM configures the DKIM signatures (RFC 6376, RFC 8463) on every
// message cvd sends, with d= the mail domain.
type DKIM struct {
	Enabled bool
	// Keys are the signing keys, RSA first then Ed25519; a key whose file
	// is set to "" is left out.
	Keys []DKIMKey
	// Headers are the header fields signed; empty means cvd's default set.
	Headers []string
}

// DKIMKey is one DKIM signing key: Kind "rsa" or "ed25519", its selector
// and its PEM private key file.
type DKIMKey struct {
	Kind     string
	Selector string
	KeyFile  string
}

// Embargo configures incidents: the embargo rules, the security team,
// the downstream roster and where announcements go.
type Embargo struct {
	// MinNotice is the least time between the pre-notification and the
	// public date; MaxEmbargo the most between the first downstream notice
	// and the public date (unless overridden with a recorded reason).
	MinNotice  time.Duration
	MaxEmbargo time.Duration
	// ReminderBefore is when silent downstreams are reminded, before the
	// date; AckEscalation how long a report may wait for the team.
	ReminderBefore time.Duration
	AckEscalation  time.Duration
	// SubjectPrefix tags pre-notifications, e.g. "[vs]".
	SubjectPrefix string
	// Project and Vendor name the software and its maintainers in
	// advisories.
	Project string
	Vendor  string
	// Announce is the announce list address; External are public lists
	// that get the announcement too (e.g. oss-security).
	Announce string
	External []string
	// Team are the coordinators added to every incident; Roster the
	// downstreams pre-notified by default.
	Team   []Contact
	Roster []Contact
}

// Contact is a person or team with an OpenPGP key file.
type Contact struct {
	// Category is a roster entry's category (distribution, vendor,
	// service-provider), "" when none is configured.
	Category string

	Name    string
	Email   string
	KeyFile string // absolute; "" when none is configured
	RosterKind
}

// age is a duration that also takes days: "5d", "36h", "90m".
type age time.Duration

func (a *age) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err != nil || fmt.Sprint(days) != n {
			return fmt.Errorf("%q is not a duration; use e.g. \"5d\" or \"36h\"", s)
		}
		*a = age(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration; use e.g. \"5d\" or \"36h\"", s)
	}
	*a = age(d)
	return nil
}

// Web configures the public site: security.txt, the Web Key Directory,
// advisory pages, the feed and one-click unsubscribe.
type Web struct {
	// Listen is the HTTP address; "" disables the server.
	Listen string
	// BaseURL is the public URL of the site, without a trailing slash
	// (security.txt's Canonical, page URLs, one-click unsubscribe links).
	BaseURL string
	// Contacts are security.txt's Contact URIs.
	Contacts []string
	// PolicyURL is security.txt's Policy ("" for the site's policy page);
	// PolicyText replaces the default text of that page.
	PolicyURL  string
	PolicyText string
	// Languages are security.txt's Preferred-Languages.
	Languages []string
	// ExpiresIn is how far ahead security.txt's Expires lies.
	ExpiresIn time.Duration
	// StaticDir, when set, is where 'cvd site build' writes by default and
	// where 'cvd serve' keeps a static copy of the site current.
	StaticDir string
}

// Log configures logging.
type Log struct {
	Format string // "text" or "json"
	Level  string // "debug", "info", "warn", "error"
}

// raw mirrors the TOML file; pointers tell "absent" from "zero".
type raw struct {
	Domain   *string `toml:"domain"`
	Hostname *string `toml:"hostname"`
	DataDir  *string `toml:"data_dir"`
	Database *string `toml:"database"`
	// TemplatesDir is templates_dir.
	TemplatesDir *string `toml:"templates_dir"`
	SMTP         struct {
		Listen              *string        `toml:"listen"`
		MaxMessageSize      *Size          `toml:"max_message_size"`
		MaxRecipients       *int           `toml:"max_recipients"`
		MaxConnections      *int           `toml:"max_connections"`
		MaxConnectionsPerIP *int           `toml:"max_connections_per_ip"`
		ReadTimeout         *time.Duration `toml:"read_timeout"`
		WriteTimeout        *time.Duration `toml:"write_timeout"`
		MaxMIMEParts        *int           `toml:"max_mime_parts"`
		MaxMIMEDepth        *int           `toml:"max_mime_depth"`
		MaxDecryptedSize    *Size          `toml:"max_decrypted_size"`
	} `toml:"smtp"`
	IMAP struct {
		Listen *string `toml:"listen"`
	} `toml:"imap"`
	TLS struct {
		CertFile *string `toml:"cert_file"`
		KeyFile  *string `toml:"key_file"`
	} `toml:"tls"`
	PGP struct {
		KeyFile    *string `toml:"key_file"`
		PublicFile *string `toml:"public_file"`
	} `toml:"pgp"`
	Delivery struct {
		Mode           *string  `toml:"mode"`
		OutboxDir      *string  `toml:"outbox_dir"`
		Smarthost      *string  `toml:"smarthost"`
		TLS            *string  `toml:"tls"`
		CAFile         *string  `toml:"ca_file"`
		ServerName     *string  `toml:"server_name"`
		Username       *string  `toml:"username"`
		PasswordFile   *string  `toml:"password_file"`
		MaxAge         *age     `toml:"max_age"`
		PerDestination *int     `toml:"per_destination"`
		MTASTS         *bool    `toml:"mta_sts"`
		RequireTLS     []string `toml:"require_tls"`
	} `toml:"delivery"`
	DKIM struct {
		Enabled         *bool    `toml:"enabled"`
		RSASelector     *string  `toml:"rsa_selector"`
		RSAKeyFile      *string  `toml:"rsa_key_file"`
		Ed25519Selector *string  `toml:"ed25519_selector"`
		Ed25519KeyFile  *string  `toml:"ed25519_key_file"`
		Headers         []string `toml:"headers"`
	} `toml:"dkim"`
	Embargo struct {
		MinNotice      *age         `toml:"min_notice"`
		MaxEmbargo     *age         `toml:"max_embargo"`
		ReminderBefore *age         `toml:"reminder_before"`
		AckEscalation  *age         `toml:"ack_escalation"`
		AgendaEvery    *age         `toml:"agenda_every"`
		SubjectPrefix  *string      `toml:"subject_prefix"`
		Project        *string      `toml:"project"`
		Vendor         *string      `toml:"vendor"`
		Announce       *string      `toml:"announce"`
		External       []string     `toml:"external"`
		Team           []rawContact `toml:"team"`
		Roster         []rawContact `toml:"roster"`
	} `toml:"embargo"`
	Lists struct {
		MaxSignatureAge *age `toml:"max_signature_age"`
	} `toml:"lists"`
	DNS struct {
		Resolver *string `toml:"resolver"`
	} `toml:"dns"`
	Web struct {
		Listen     *string  `toml:"listen"`
		BaseURL    *string  `toml:"base_url"`
		Contacts   []string `toml:"contacts"`
		PolicyURL  *string  `toml:"policy_url"`
		PolicyText *string  `toml:"policy_text"`
		Languages  []string `toml:"languages"`
		ExpiresIn  *age     `toml:"expires_in"`
		StaticDir  *string  `toml:"static_dir"`
	} `toml:"web"`
	Log struct {
		Format *string `toml:"format"`
		Level  *string `toml:"level"`
	} `toml:"log"`
	Intake rawIntake `toml:"intake"`
	CVE    rawCVE    `toml:"cve"`
	Spam   rawSpam   `toml:"spam"`
	// Announce is [announce].
	Announce  rawAnnounce  `toml:"announce"`
	Metrics   rawMetrics   `toml:"metrics"`
	Retention rawRetention `toml:"retention"`

	// The dependency check (deps.go).
	Deps       rawDeps        `toml:"deps"`
	Components []rawComponent `toml:"components"`
}

type rawContact struct {
	Category *string `toml:"category"`

	Name    *string `toml:"name"`
	Email   *string `toml:"email"`
	KeyFile *string `toml:"key_file"`
	rawRosterKind
}

// Error is a configuration error about one key.
type Error struct {
	File string
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Key, e.Msg)
}

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	return parse(b, abs, filepath.Dir(abs), false)
}

// Default returns the embedded default configuration, with its data
// directory ("cvd-data") relative to the working directory wd.
func Default(wd string) (*Config, error) {
	return parse(defaultTOML, EmbeddedName, wd, true)
}

// Parse validates configuration text as if read from file, resolving
// relative paths against baseDir.
func Parse(text []byte, file, baseDir string) (*Config, error) {
	return parse(text, file, baseDir, false)
}

func parse(text []byte, file, baseDir string, embedded bool) (*Config, error) {
	var r raw
	md, err := toml.NewDecoder(bytes.NewReader(text)).Decode(&r)
	if err != nil {
		return nil, decodeError(file, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return nil, unknownKeyError(file, keys[0])
	}
	c := &Config{File: file, Embedded: embedded}
	if err := c.apply(&r, baseDir); err != nil {
		return nil, err
	}
	return c, nil
}

func decodeError(file string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.LastKey != "" {
			return &Error{File: file, Key: pe.LastKey, Msg: fmt.Sprintf("line %d: %s", pe.Position.Line, msg)}
		}
		return &Error{File: file, Msg: fmt.Sprintf("line %d: %s", pe.Position.Line, msg)}
	}
	msg := strings.TrimPrefix(err.Error(), "toml: ")
	if m := lastKeyRE.FindStringSubmatch(msg); m != nil {
		return &Error{File: file, Key: m[2], Msg: fmt.Sprintf("line %s: %s", m[1], m[3])}
	}
	return &Error{File: file, Msg: msg}
}

var lastKeyRE = regexp.MustCompile(`^line (\d+) \(last key "([^"]*)"\): (.*)$`)

// keys lists every known key, for unknown-key suggestions.
var keys = []string{
	"domain", "hostname", "data_dir", "database", "templates_dir",
	"smtp", "smtp.listen", "smtp.max_message_size", "smtp.max_recipients", "smtp.max_connections",
	"smtp.max_connections_per_ip", "smtp.read_timeout", "smtp.write_timeout",
	"smtp.max_mime_parts", "smtp.max_mime_depth", "smtp.max_decrypted_size",
	"imap", "imap.listen",
	"tls", "tls.cert_file", "tls.key_file",
	"pgp", "pgp.key_file", "pgp.public_file",
	"delivery", "delivery.mode", "delivery.outbox_dir", "delivery.smarthost", "delivery.tls",
	"delivery.ca_file", "delivery.server_name",
	"delivery.username", "delivery.password_file", "delivery.max_age", "delivery.per_destination",
	"embargo", "embargo.min_notice", "embargo.max_embargo", "embargo.reminder_before", "embargo.ack_escalation",
	"embargo.subject_prefix", "embargo.project", "embargo.vendor", "embargo.announce", "embargo.external",
	"embargo.team", "embargo.team.name", "embargo.team.email", "embargo.team.key_file",
	"embargo.roster", "embargo.roster.name", "embargo.roster.email", "embargo.roster.key_file",
	"lists", "lists.max_signature_age",
	"web", "web.listen", "web.base_url", "web.contacts", "web.policy_url", "web.policy_text", "web.languages",
	"web.expires_in", "web.static_dir",
	"dns", "dns.resolver",
	"log", "log.format", "log.level",
	"intake", "intake.acknowledge_unauthenticated", "intake.per_sender", "intake.per_network", "intake.window", "intake.ipv4_prefix", "intake.ipv6_prefix", "intake.digest_every",
	"spam", "spam.rspamd_url", "spam.threshold", "spam.timeout",
	"metrics", "metrics.listen",
	"deps", "deps.osv_api", "deps.osv_data", "deps.check_every",
	"components", "components.lockfile", "components.name", "components.ecosystem", "components.version",
}

func unknownKeyError(file, key string) error {
	msg := "unknown key"
	best, bestDist := "", 3
	for _, k := range keys {
		if d := editDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", best)
	} else {
		msg += "; remove it (see the commented cvd.toml written by 'cvd init' for the known keys)"
	}
	return &Error{File: file, Key: key, Msg: msg}
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func str(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

func (c *Config) apply(r *raw, baseDir string) error {
	bad := func(key, format string, args ...any) error {
		return &Error{File: c.File, Key: key, Msg: fmt.Sprintf(format, args...)}
	}

	if r.Domain == nil {
		return bad("domain", "missing; set it to the project's mail domain, e.g. domain = \"example.org\"")
	}
	c.Domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(*r.Domain), "."))
	if err := checkDomain(c.Domain); err != nil {
		return bad("domain", "%v; set it to the project's mail domain, e.g. domain = \"example.org\"", err)
	}
	c.Hostname = strings.ToLower(str(r.Hostname, c.Domain))
	if err := checkDomain(c.Hostname); err != nil {
		return bad("hostname", "%v; set it to this server's host name, e.g. hostname = \"mail.example.org\"", err)
	}

	dataDir := str(r.DataDir, ".")
	if dataDir == "" {
		return bad("data_dir", "empty; set it to the folder for cvd's database, keys and outbox (relative paths are taken from the config file's folder)")
	}
	c.DataDir = resolve(baseDir, dataDir)
	c.Database = resolve(c.DataDir, str(r.Database, "cvd.db"))
	if t := str(r.TemplatesDir, ""); t != "" {
		c.TemplatesDir = resolve(c.DataDir, t)
	}

	c.SMTP.Listen = str(r.SMTP.Listen, "127.0.0.1:2525")
	if err := checkListen(c.SMTP.Listen); err != nil {
		return bad("smtp.listen", "%v; use HOST:PORT, e.g. \"127.0.0.1:2525\" or \":25\"", err)
	}
	c.SMTP.MaxMessageBytes = 25 << 20
	if r.SMTP.MaxMessageSize != nil {
		c.SMTP.MaxMessageBytes = int64(*r.SMTP.MaxMessageSize)
	}
	if c.SMTP.MaxMessageBytes < 1024 {
		return bad("smtp.max_message_size", "%d bytes is too small; use at least \"1KiB\", e.g. \"25MiB\"", c.SMTP.MaxMessageBytes)
	}
	if c.SMTP.MaxMessageBytes > 1<<30 {
		return bad("smtp.max_message_size", "%d bytes is more than 1GiB; messages are kept in memory and in the database, use e.g. \"25MiB\"", c.SMTP.MaxMessageBytes)
	}
	var err error
	if c.SMTP.MaxRecipients, err = positive(r.SMTP.MaxRecipients, 100); err != nil {
		return bad("smtp.max_recipients", "%v", err)
	}
	if c.SMTP.MaxConnections, err = positive(r.SMTP.MaxConnections, 200); err != nil {
		return bad("smtp.max_connections", "%v", err)
	}
	if c.SMTP.MaxConnectionsPerIP, err = positive(r.SMTP.MaxConnectionsPerIP, 20); err != nil {
		return bad("smtp.max_connections_per_ip", "%v", err)
	}
	if c.SMTP.MaxConnectionsPerIP > c.SMTP.MaxConnections {
		return bad("smtp.max_connections_per_ip", "%d is more than smtp.max_connections (%d); lower it or raise smtp.max_connections", c.SMTP.MaxConnectionsPerIP, c.SMTP.MaxConnections)
	}
	if c.SMTP.ReadTimeout, err = duration(r.SMTP.ReadTimeout, 10*time.Minute); err != nil {
		return bad("smtp.read_timeout", "%v", err)
	}
	if c.SMTP.WriteTimeout, err = duration(r.SMTP.WriteTimeout, time.Minute); err != nil {
		return bad("smtp.write_timeout", "%v", err)
	}
	if c.SMTP.MaxMIMEParts, err = positive(r.SMTP.MaxMIMEParts, 512); err != nil {
		return bad("smtp.max_mime_parts", "%v", err)
	}
	if c.SMTP.MaxMIMEDepth, err = positive(r.SMTP.MaxMIMEDepth, 16); err != nil {
		return bad("smtp.max_mime_depth", "%v", err)
	}
	c.SMTP.MaxDecryptedBytes = 64 << 20
	if r.SMTP.MaxDecryptedSize != nil {
		c.SMTP.MaxDecryptedBytes = int64(*r.SMTP.MaxDecryptedSize)
	}
	if c.SMTP.MaxDecryptedBytes < 1024 {
		return bad("smtp.max_decrypted_size", "%d bytes is too small; use at least \"1KiB\", e.g. \"64MiB\"", c.SMTP.MaxDecryptedBytes)
	}

	c.IMAP.Listen = str(r.IMAP.Listen, "127.0.0.1:1143")
	if err := checkListen(c.IMAP.Listen); err != nil {
		return bad("imap.listen", "%v; use HOST:PORT, e.g. \"127.0.0.1:1143\" or \":993\"", err)
	}

	c.TLS.CertFile = resolve(c.DataDir, str(r.TLS.CertFile, "tls/cert.pem"))
	c.TLS.KeyFile = resolve(c.DataDir, str(r.TLS.KeyFile, "tls/key.pem"))
	c.PGP.KeyFile = resolve(c.DataDir, str(r.PGP.KeyFile, "keys/project.asc"))
	c.PGP.PublicFile = resolve(c.DataDir, str(r.PGP.PublicFile, "keys/project.pub.asc"))

	c.Delivery.Mode = str(r.Delivery.Mode, "outbox")
	switch c.Delivery.Mode {
	case "outbox", "smarthost", "mx":
	default:
		return bad("delivery.mode", "%q is not a delivery mode; use \"outbox\", \"smarthost\" or \"mx\"", c.Delivery.Mode)
	}
	c.Delivery.OutboxDir = resolve(c.DataDir, str(r.Delivery.OutboxDir, "outbox"))
	c.Delivery.Smarthost = str(r.Delivery.Smarthost, "")
	if c.Delivery.Mode == "smarthost" && c.Delivery.Smarthost == "" {
		return bad("delivery.smarthost", "missing; mode \"smarthost\" needs the relay as HOST:PORT, e.g. smarthost = \"smtp.example.org:587\"")
	}
	if c.Delivery.Smarthost != "" {
		if err := checkListen(c.Delivery.Smarthost); err != nil {
			return bad("delivery.smarthost", "%v; use HOST:PORT, e.g. \"smtp.example.org:587\"", err)
		}
	}
	c.Delivery.TLS = str(r.Delivery.TLS, "starttls")
	switch c.Delivery.TLS {
	case "starttls", "tls", "none":
	default:
		return bad("delivery.tls", "%q is not a TLS mode; use \"starttls\", \"tls\" (implicit, port 465) or \"none\"", c.Delivery.TLS)
	}
	if r.Delivery.CAFile != nil && *r.Delivery.CAFile != "" {
		c.Delivery.CAFile = resolve(c.DataDir, *r.Delivery.CAFile)
		pem, err := os.ReadFile(c.Delivery.CAFile)
		if err != nil {
			return bad("delivery.ca_file", "%v; name a PEM file with the relay's CA certificate", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return bad("delivery.ca_file", "%s holds no PEM certificate; name a PEM file with the relay's CA certificate", c.Delivery.CAFile)
		}
	}
	c.Delivery.ServerName = strings.ToLower(str(r.Delivery.ServerName, ""))
	if c.Delivery.ServerName != "" {
		if err := checkDomain(c.Delivery.ServerName); err != nil {
			return bad("delivery.server_name", "%v; use the host name in the relay's certificate, e.g. \"relay.example.org\"", err)
		}
	}
	if (c.Delivery.CAFile != "" || c.Delivery.ServerName != "") && c.Delivery.TLS == "none" {
		return bad("delivery.tls", "\"none\" while delivery.ca_file or delivery.server_name is set; use \"starttls\" or \"tls\"")
	}
	c.Delivery.Username = str(r.Delivery.Username, "")
	if r.Delivery.PasswordFile != nil && *r.Delivery.PasswordFile != "" {
		c.Delivery.PasswordFile = resolve(c.DataDir, *r.Delivery.PasswordFile)
	}
	if c.Delivery.Username != "" && c.Delivery.PasswordFile == "" {
		return bad("delivery.password_file", "missing; delivery.username is set, so name the file holding the smarthost password, e.g. password_file = \"smarthost.password\"")
	}
	c.Delivery.MaxAge = 5 * 24 * time.Hour
	if r.Delivery.MaxAge != nil {
		c.Delivery.MaxAge = time.Duration(*r.Delivery.MaxAge)
	}
	if c.Delivery.MaxAge < time.Hour || c.Delivery.MaxAge > 30*24*time.Hour {
		return bad("delivery.max_age", "%v is out of range; use between \"1h\" and \"30d\" (default \"5d\")", c.Delivery.MaxAge)
	}
	if c.Delivery.PerDestination, err = positive(r.Delivery.PerDestination, 4); err != nil {
		return bad("delivery.per_destination", "%v", err)
	}
	c.Delivery.MTASTS = r.Delivery.MTASTS == nil || *r.Delivery.MTASTS
	for _, d := range r.Delivery.RequireTLS {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if err := checkDomain(d); err != nil {
			return bad("delivery.require_tls", "%q: %v; list domains, e.g. [\"debian.org\"]", d, err)
		}
		c.Delivery.RequireTLS = append(c.Delivery.RequireTLS, d)
	}

	if err := c.applyDKIM(r, bad); err != nil {
		return err
	}

	c.Lists.MaxSignatureAge = 7 * 24 * time.Hour
	if r.Lists.MaxSignatureAge != nil {
		c.Lists.MaxSignatureAge = time.Duration(*r.Lists.MaxSignatureAge)
	}
	if c.Lists.MaxSignatureAge < time.Hour || c.Lists.MaxSignatureAge > 90*24*time.Hour {
		return bad("lists.max_signature_age", "%v is out of range; use between \"1h\" and \"90d\" (default \"7d\")", c.Lists.MaxSignatureAge)
	}

	if r.Intake.AcknowledgeUnauthenticated != nil {
		c.Intake.AcknowledgeUnauthenticated = *r.Intake.AcknowledgeUnauthenticated
	}
	c.DNS.Resolver = strings.TrimSpace(str(r.DNS.Resolver, ""))
	if c.DNS.Resolver != "" {
		if host, port, err := net.SplitHostPort(c.DNS.Resolver); err != nil || host == "" || port == "" {
			return bad("dns.resolver", "%q is not HOST:PORT; use e.g. \"127.0.0.1:53\", or \"\" for the system's resolver", c.DNS.Resolver)
		}
	}

	if err := c.applyEmbargo(r, bad); err != nil {
		return err
	}
	if err := c.applyWeb(r, bad); err != nil {
		return err
	}
	if err := c.applyCVE(r, bad); err != nil {
		return err
	}
	if err := c.applyIntake(r, bad); err != nil {
		return err
	}
	if err := c.applyRosterCategories(r, bad); err != nil {
		return err
	}
	if err := c.applyAnnounce(r, bad); err != nil {
		return err
	}
	if err := c.applyMetrics(r, bad); err != nil {
		return err
	}
	if err := c.applyRetention(&r.Retention, bad); err != nil {
		return err
	}
	if err := c.applyDeps(r, bad); err != nil {
		return err
	}

	c.Log.Format = str(r.Log.Format, "text")
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return bad("log.format", "%q is not a log format; use \"text\" or \"json\"", c.Log.Format)
	}
	c.Log.Level = str(r.Log.Level, "info")
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "%q is not a log level; use \"debug\", \"info\", \"warn\" or \"error\"", c.Log.Level)
	}
	return nil
}

func (c *Config) applyDKIM(r *raw, bad func(key, format string, args ...any) error) error {
	d := &c.DKIM
	d.Enabled = r.DKIM.Enabled == nil || *r.DKIM.Enabled
	for _, k := range []struct {
		kind, selKey, fileKey string
		sel, file             *string
		defSel, defFile       string
	}{
		{"rsa", "dkim.rsa_selector", "dkim.rsa_key_file", r.DKIM.RSASelector, r.DKIM.RSAKeyFile, "cvd-rsa", "dkim/rsa.pem"},
		{"ed25519", "dkim.ed25519_selector", "dkim.ed25519_key_file", r.DKIM.Ed25519Selector, r.DKIM.Ed25519KeyFile, "cvd-ed25519", "dkim/ed25519.pem"},
	} {
		file := str(k.file, k.defFile)
		if file == "" {
			continue
		}
		sel := strings.ToLower(str(k.sel, k.defSel))
		if err := checkDomain(sel); err != nil || strings.Contains(sel, "_") {
			return bad(k.selKey, "%q is not a DNS label; use letters, digits and hyphens, e.g. %q", sel, k.defSel)
		}
		d.Keys = append(d.Keys, DKIMKey{Kind: k.kind, Selector: sel, KeyFile: resolve(c.DataDir, file)})
	}
	if len(d.Keys) == 2 && d.Keys[0].Selector == d.Keys[1].Selector {
		return bad("dkim.ed25519_selector", "%q is also dkim.rsa_selector; each key needs its own selector", d.Keys[1].Selector)
	}
	if d.Enabled && len(d.Keys) == 0 {
		return bad("dkim.rsa_key_file", "both key files are empty; name at least one key or set enabled = false")
	}
	from := false
	for _, h := range r.DKIM.Headers {
		h = strings.TrimSpace(h)
		if h == "" || strings.ContainsAny(h, ": \t") {
			return bad("dkim.headers", "%q is not a header field name", h)
		}
		if strings.EqualFold(h, "From") {
			from = true
		}
		d.Headers = append(d.Headers, h)
	}
	if len(d.Headers) > 0 && !from {
		return bad("dkim.headers", "From is missing; DKIM always signs From (RFC 6376 5.4)")
	}
	return nil
}

func (c *Config) applyEmbargo(r *raw, bad func(key, format string, args ...any) error) error {
	e := &c.Embargo
	re := &r.Embargo
	dur := func(p *age, def time.Duration) time.Duration {
		if p == nil {
			return def
		}
		return time.Duration(*p)
	}
	e.MinNotice = dur(re.MinNotice, 48*time.Hour)
	if e.MinNotice < time.Hour || e.MinNotice > 30*24*time.Hour {
		return bad("embargo.min_notice", "%v is out of range; use between \"1h\" and \"30d\" (default \"48h\")", e.MinNotice)
	}
	e.MaxEmbargo = dur(re.MaxEmbargo, 14*24*time.Hour)
	if e.MaxEmbargo < e.MinNotice || e.MaxEmbargo > 90*24*time.Hour {
		return bad("embargo.max_embargo", "%v is out of range; use between embargo.min_notice (%v) and \"90d\" (default \"14d\", the distros list's maximum)", e.MaxEmbargo, e.MinNotice)
	}
	e.ReminderBefore = dur(re.ReminderBefore, 24*time.Hour)
	if e.ReminderBefore < 0 || e.ReminderBefore > e.MinNotice {
		return bad("embargo.reminder_before", "%v is out of range; use at most embargo.min_notice (%v), e.g. \"24h\"", e.ReminderBefore, e.MinNotice)
	}
	e.AckEscalation = dur(re.AckEscalation, 24*time.Hour)
	if e.AckEscalation < time.Hour || e.AckEscalation > 30*24*time.Hour {
		return bad("embargo.ack_escalation", "%v is out of range; use between \"1h\" and \"30d\" (default \"24h\")", e.AckEscalation)
	}
	e.SubjectPrefix = str(re.SubjectPrefix, "[vs]")
	if strings.ContainsAny(e.SubjectPrefix, "\r\n") || len(e.SubjectPrefix) > 40 {
		return bad("embargo.subject_prefix", "must be one short line, e.g. \"[vs]\"")
	}
	e.Project = strings.TrimSpace(str(re.Project, c.Domain))
	if e.Project == "" || strings.ContainsAny(e.Project, "\r\n") {
		return bad("embargo.project", "must be the project's name on one line, e.g. project = \"libexample\"")
	}
	e.Vendor = strings.TrimSpace(str(re.Vendor, e.Project))
	if e.Vendor == "" || strings.ContainsAny(e.Vendor, "\r\n") {
		return bad("embargo.vendor", "must be the maintainers' name on one line, e.g. vendor = \"The Example Project\"")
	}
	e.Announce = str(re.Announce, "announce@"+c.Domain)
	if e.Announce != "" && !isAddress(e.Announce) {
		return bad("embargo.announce", "%q is not an address; use e.g. \"announce@%s\", or \"\" for none", e.Announce, c.Domain)
	}
	for _, a := range re.External {
		if !isAddress(a) {
			return bad("embargo.external", "%q is not an address; list public lists like [\"oss-security@lists.openwall.com\"]", a)
		}
		e.External = append(e.External, strings.ToLower(a))
	}
	contacts := func(key string, in []rawContact, needName bool) ([]Contact, error) {
		var out []Contact
		seen := map[string]bool{}
		for i, rc := range in {
			k := fmt.Sprintf("%s[%d]", key, i+1)
			ct := Contact{Name: strings.TrimSpace(str(rc.Name, "")), Email: strings.ToLower(strings.TrimSpace(str(rc.Email, "")))}
			if !isAddress(ct.Email) {
				return nil, bad(k+".email", "%q is not an address; give the mail address, e.g. email = \"security@distro.example\"", ct.Email)
			}
			if seen[ct.Email] {
				return nil, bad(k+".email", "%s is listed twice; remove one", ct.Email)
			}
			seen[ct.Email] = true
			if needName && ct.Name == "" {
				return nil, bad(k+".name", "missing; name the downstream, e.g. name = \"Debian\" (used with 'cvd incident notify --to')")
			}
			if strings.ContainsAny(ct.Name, "\r\n,") {
				return nil, bad(k+".name", "must be one line without commas")
			}
			if rc.KeyFile != nil && *rc.KeyFile != "" {
				ct.KeyFile = resolve(c.DataDir, *rc.KeyFile)
			}
			var err error
			if ct.RosterKind, err = rosterKind(k, rc.rawRosterKind, needName, bad); err != nil {
				return nil, err
			}
			out = append(out, ct)
		}
		return out, nil
	}
	var err error
	if e.Team, err = contacts("embargo.team", re.Team, false); err != nil {
		return err
	}
	if e.Roster, err = contacts("embargo.roster", re.Roster, true); err != nil {
		return err
	}
	return nil
}

func (c *Config) applyWeb(r *raw, bad func(key, format string, args ...any) error) error {
	w := &c.Web
	rw := &r.Web
	w.Listen = str(rw.Listen, "127.0.0.1:8080")
	if w.Listen != "" {
		if err := checkListen(w.Listen); err != nil {
			return bad("web.listen", "%v; use HOST:PORT, e.g. \"127.0.0.1:8080\", or \"\" for no web server", err)
		}
	}
	w.BaseURL = strings.TrimRight(strings.TrimSpace(str(rw.BaseURL, "https://"+c.Domain)), "/")
	if err := checkWebURL(w.BaseURL); err != nil {
		return bad("web.base_url", "%v; use the site's public URL, e.g. \"https://%s\" or \"https://%s/security\"", err, c.Domain, c.Domain)
	}
	if u, _ := url.Parse(w.BaseURL); u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return bad("web.base_url", "%q has a query, fragment or user; use a plain URL, e.g. \"https://%s\"", w.BaseURL, c.Domain)
	}
	w.Contacts = []string{"mailto:security@" + c.Domain}
	if rw.Contacts != nil {
		w.Contacts = nil
		for _, ct := range rw.Contacts {
			ct = strings.TrimSpace(ct)
			if err := checkContact(ct); err != nil {
				return bad("web.contacts", "%v; list URIs like [\"mailto:security@%s\", \"https://%s/security\"]", err, c.Domain, c.Domain)
			}
			w.Contacts = append(w.Contacts, ct)
		}
		if len(w.Contacts) == 0 {
			return bad("web.contacts", "empty; security.txt needs at least one Contact, e.g. [\"mailto:security@%s\"]", c.Domain)
		}
	}
	w.PolicyURL = strings.TrimSpace(str(rw.PolicyURL, ""))
	if w.PolicyURL != "" {
		if err := checkWebURL(w.PolicyURL); err != nil {
			return bad("web.policy_url", "%v; use an https URL, or \"\" for the site's own policy page", err)
		}
	}
	w.PolicyText = str(rw.PolicyText, "")
	w.Languages = []string{"en"}
	if rw.Languages != nil {
		w.Languages = nil
		for _, l := range rw.Languages {
			if !languageRE.MatchString(l) {
				return bad("web.languages", "%q is not a language tag; list tags like [\"en\", \"de\"]", l)
			}
			w.Languages = append(w.Languages, l)
		}
		if len(w.Languages) == 0 {
			return bad("web.languages", "empty; list at least one language tag, e.g. [\"en\"]")
		}
	}
	w.ExpiresIn = 180 * 24 * time.Hour
	if rw.ExpiresIn != nil {
		w.ExpiresIn = time.Duration(*rw.ExpiresIn)
	}
	if w.ExpiresIn < 24*time.Hour || w.ExpiresIn > 365*24*time.Hour {
		return bad("web.expires_in", "%v is out of range; use between \"1d\" and \"365d\" (RFC 9116 asks for less than a year; default \"180d\")", w.ExpiresIn)
	}
	if d := str(rw.StaticDir, ""); d != "" {
		w.StaticDir = resolve(c.DataDir, d)
	}
	return nil
}

var languageRE = regexp.MustCompile(`^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$`)

// checkWebURL accepts an absolute http or https URL on one line.
func checkWebURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || strings.ContainsAny(s, " \t\r\n") || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

// checkContact accepts a security.txt Contact: a mailto:, https: or tel: URI.
func checkContact(s string) error {
	switch {
	case strings.ContainsAny(s, " \t\r\n"):
		return fmt.Errorf("%q is not one URI", s)
	case strings.HasPrefix(s, "mailto:"):
		if !isAddress(strings.TrimPrefix(s, "mailto:")) {
			return fmt.Errorf("%q has no valid address", s)
		}
	case strings.HasPrefix(s, "https:"):
		if err := checkWebURL(s); err != nil {
			return err
		}
	case strings.HasPrefix(s, "tel:"):
		if len(s) < 6 {
			return fmt.Errorf("%q has no number", s)
		}
	default:
		return fmt.Errorf("%q is not a mailto:, https: or tel: URI", s)
	}
	return nil
}

func isAddress(a string) bool {
	at := strings.LastIndexByte(a, '@')
	if at < 1 || strings.ContainsAny(a, " \t\r\n<>,\"") {
		return false
	}
	return checkDomain(strings.ToLower(a[at+1:])) == nil
}

func resolve(base, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(base, p)
}

func positive(p *int, def int) (int, error) {
	if p == nil {
		return def, nil
	}
	if *p < 1 {
		return 0, fmt.Errorf("%d must be at least 1 (default %d)", *p, def)
	}
	return *p, nil
}

func duration(p *time.Duration, def time.Duration) (time.Duration, error) {
	if p == nil {
		return def, nil
	}
	if *p < time.Second {
		return 0, fmt.Errorf("%v is too short; use a duration of at least \"1s\" (default %q)", *p, def.String())
	}
	return *p, nil
}

func checkListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not an address", addr)
	}
	if port == "" {
		return fmt.Errorf("%q has no port", addr)
	}
	if host != "" && net.ParseIP(host) == nil && checkDomain(host) != nil {
		return fmt.Errorf("%q has a bad host", addr)
	}
	return nil
}

func checkDomain(d string) error {
	if d == "" {
		return errors.New("empty")
	}
	if len(d) > 253 {
		return fmt.Errorf("%q is longer than 253 characters", d)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%q is not a valid domain name", d)
		}
		for i, ch := range label {
			ok := ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' && i > 0 && i < len(label)-1
			if !ok {
				return fmt.Errorf("%q is not a valid domain name (use letters, digits, '-' and '.'; write internationalised names in their xn-- form)", d)
			}
		}
	}
	return nil
}
