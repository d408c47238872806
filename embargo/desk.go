package embargo

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/publish"
	"github.com/cvd-project/cvd/store"
)

// Privacy of an incident.
const (
	// Private incidents follow the embargo path.
	Private = "private"
	// Public incidents are already known: fast path, no embargo.
	Public = "public"
	// ZeroDay incidents were not responsibly disclosed: fast path, and
	// flagged in the post-mortem.
	ZeroDay = "zero-day"
)

// Policy holds the embargo rules.
type Policy struct {
	// MinNotice is the least time between pre-notification and public
	// date (48h).
	MinNotice time.Duration
	// MaxEmbargo is the longest time between the first downstream notice
	// and the public date (14 days) unless overridden with a reason.
	MaxEmbargo time.Duration
	// ReminderBefore is how long before the date silent downstreams are
	// reminded (24h).
	ReminderBefore time.Duration
	// AckEscalation is how long a report may wait for a human of the team
	// before the team is told (24h).
	AckEscalation time.Duration
	// SubjectPrefix tags pre-notifications ("[vs]").
	SubjectPrefix string
	// ReleaseHour is the UTC hour of proposed dates (10).
	ReleaseHour int
}

// DefaultPolicy is the distros-compatible policy.
func DefaultPolicy() Policy {
	return Policy{MinNotice: 48 * time.Hour, MaxEmbargo: 14 * 24 * time.Hour, ReminderBefore: 24 * time.Hour,
		AckEscalation: 24 * time.Hour, SubjectPrefix: "[vs]", ReleaseHour: 10}
}

// Person is a member of the security team or of the downstream roster.
type Person struct {
	// Category is a downstream's roster category ("" when none).
	Category string

	Name  string
	Email string
	// Key is the armored public key; nil when none is configured.
	Key []byte
	// List is set for a roster entry that is a list (the distros list).
	List *ListKind
}

// Desk runs incidents: intake, lifecycle, embargo rules, notices and
// release. The CLI and the keyword handler both go through it.
type Desk struct {
	DB     *store.DB
	Lists  *lists.Service
	Domain string
	// Key is the project's private key: it decrypts reports and signs
	// every notice and the announcement.
	Key    *crypto.Key
	Limits crypto.Limits
	Policy Policy
	// Team are the coordinators added to every new incident.
	Team []Person
	// Roster are the downstreams pre-notified by default.
	Roster []Person
	// Announce is the announce list address (announce@DOMAIN).
	Announce string
	// External are public lists that get the announcement too (e.g.
	// oss-security@lists.openwall.com).
	External []string
	// Webhooks name the configured endpoints that get a signed event at
	// each release.
	Webhooks []string
	// AcknowledgeUnauthenticated sends automatic replies also to
	// reporters whose address did not authenticate (see Intake).
	AcknowledgeUnauthenticated bool
	// Project describes the project in advisories.
	Project publish.Project
	// CVE says how CVE IDs are had (CNA or not, whom to ask).
	CVE CVESettings
	// AgendaEvery is how often the coordinators get the agenda (0: never).
	AgendaEvery time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	Log *slog.Logger
	// AfterRelease, when set, is called after a release transaction
	// committed (tests use it to crash there).
	AfterRelease func(id string)
	// AfterPost, when set, is called after the intake's post to its
	// incident's list committed, with the acknowledgement when one was due
	// (tests crash there).
	AfterPost func(id string)
	// IntakePolicy is the intake policy: rate limits and spam scoring of new
	// reports (the zero value opens an incident for every report).
	IntakePolicy IntakePolicy
	// Authenticated, when set, replaces the sender check recorded on the
	// spooled message (SPF/DKIM/DMARC, mailauth) for the intake policy,
	// which counts authenticated senders apart from forged ones.
	Authenticated func(*store.SpooledMessage) bool
	// Triaged, when set, is called after a report went to the triage
	// queue (to wake the scheduler for the digest).
	Triaged func()
	// DeferTriage batches the writes of reports held in triage: they are
	// written by FlushTriage (the Router's AfterBatch), one transaction
	// per batch instead of one per report.
	DeferTriage bool

	triageMu  sync.Mutex
	triageBuf []*store.Triaged
}

func (d *Desk) now() time.Time {
	if d.Now != nil {
		return d.Now().UTC()
	}
	return time.Now().UTC()
}

func (d *Desk) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.Default()
}

// IntakeAddress is security@DOMAIN.
func (d *Desk) IntakeAddress() string { return lists.SecurityLocalPart + "@" + d.Domain }

// ListAddress is the address of incident id's list.
func (d *Desk) ListAddress(id string) string {
	return lists.SecurityLocalPart + "+" + id + "@" + d.Domain
}

// Facts are what the team records about an incident. Each field says
// whether it may leave (vis:"public") or stays with the incident's
// members (vis:"internal"); this is the one place that decides it, and
// every public output is built from Facts.Public (see public.go).
type Facts struct {
	Title            string            `json:"title,omitempty" vis:"public"`
	Description      string            `json:"description,omitempty" vis:"public"`
	ProblemType      string            `json:"problem_type,omitempty" vis:"public"`
	CWE              string            `json:"cwe,omitempty" vis:"public"`
	CVE              string            `json:"cve,omitempty" vis:"public"`
	CVSS             []string          `json:"cvss,omitempty" vis:"public"`
	Packages         []publish.Package `json:"packages,omitempty" vis:"public"`
	Backports        map[string]string `json:"backports,omitempty" vis:"internal"` // version -> decision
	Workaround       string            `json:"workaround,omitempty" vis:"public"`
	Credits          []publish.Credit  `json:"credits,omitempty" vis:"public"`
	References       []string          `json:"references,omitempty" vis:"public"`
	UpstreamAdvisory string            `json:"upstream_advisory,omitempty" vis:"public"`
	Notes            []string          `json:"notes,omitempty" vis:"internal"`
	RejectReason     string            `json:"reject_reason,omitempty" vis:"internal"`
	DuplicateOf      string            `json:"duplicate_of,omitempty" vis:"internal"`
	// BreakReason is announced with an embargo broken early.
	BreakReason string `json:"break_reason,omitempty" vis:"public"`
	// ReleaseHeld says what the advisory lacked when the scheduler held
	// its release at the public date; empty once released.
	ReleaseHeld string `json:"release_held,omitempty" vis:"internal"`
	// Decisions are the team's release decisions (patches, tests,
	// exploit, public issue, discussion).
	Decisions []Decision `json:"decisions,omitempty" vis:"internal"`
	// PublicNoticeAt is when the public notice of a public or zero-day
	// incident went to the external lists.
	PublicNoticeAt time.Time `json:"public_notice_at,omitzero" vis:"internal"`
	// ExploitReminded and IncompleteWarned record reminders sent once.
	ExploitReminded  bool `json:"exploit_reminded,omitempty" vis:"internal"`
	IncompleteWarned bool `json:"incomplete_warned,omitempty" vis:"internal"`
	// Dependency is set on an incident opened for an upstream advisory of
	// a shipped component (see dependency.go).
	Dependency *DependencyFacts `json:"dependency,omitempty" vis:"public"`
}

// Incident is an incident with its decoded facts.
type Incident struct {
	store.Incident
	Facts Facts
}

func decode(in *store.Incident) (*Incident, error) {
	out := &Incident{Incident: *in}
	if len(in.Facts) > 0 {
		if err := json.Unmarshal(in.Facts, &out.Facts); err != nil {
			return nil, fmt.Errorf("incident %s: facts: %w", in.ID, err)
		}
	}
	return out, nil
}

// Actor is who asks for a change: a member's address with the signature
// fingerprint that authorised it, or the CLI user.
type Actor struct {
	Who    string
	Signer string
	// Role is the member's role on the incident list ("" for the CLI,
	// which is trusted as the operator).
	Role string
}

// CLI is the actor for commands run on the server itself.
func CLI(user string) Actor {
	if user == "" {
		user = "operator"
	}
	return Actor{Who: "cli:" + user}
}

// System is cvd itself (scheduler, intake).
var System = Actor{Who: "cvd"}

// Refusal is a request refused by the incident rules; its message says
// what to do instead. Nothing was changed.
type Refusal struct{ Msg string }

func (r *Refusal) Error() string { return r.Msg }

func refuse(format string, args ...any) error { return &Refusal{Msg: fmt.Sprintf(format, args...)} }

// IsRefusal reports whether err is a Refusal.
func IsRefusal(err error) bool {
	var r *Refusal
	return errors.As(err, &r)
}

// op is one change to one incident inside a transaction.
type op struct {
	d     *Desk
	ctx   context.Context
	tx    *sql.Tx
	in    *Incident
	actor Actor
	now   time.Time
	// prevState guards the update: it fails if the state moved meanwhile.
	prevState string
	notes     []string
	// released is set when this op released the incident.
	released bool
	// reminded and ackedByPost count the scheduler's work.
	reminded, ackedByPost int
}

func (d *Desk) load(ctx context.Context, tx *sql.Tx, id string) (*Incident, error) {
	si, err := store.IncidentTx(ctx, tx, strings.ToLower(strings.TrimSpace(id)))
	if errors.Is(err, store.ErrNotFound) {
		return nil, refuse("there is no incident %s", id)
	}
	if err != nil {
		return nil, err
	}
	return decode(si)
}

// beginOp loads incident id for a change by actor inside tx.
func (d *Desk) beginOp(ctx context.Context, tx *sql.Tx, id string, actor Actor) (*op, error) {
	in, err := d.load(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	return &op{d: d, ctx: ctx, tx: tx, in: in, actor: actor, now: d.now(), prevState: in.State}, nil
}

func (o *op) event(kind, format string, args ...any) error {
	return store.AddIncidentEventTx(o.ctx, o.tx, &store.IncidentEvent{Incident: o.in.ID, At: o.now, Actor: o.actor.Who,
		Signer: o.actor.Signer, Kind: kind, Detail: fmt.Sprintf(format, args...)})
}

func (o *op) note(format string, args ...any) {
	o.notes = append(o.notes, fmt.Sprintf(format, args...))
}

// save writes the incident, failing if its state changed meanwhile.
func (o *op) save() error {
	b, err := json.Marshal(o.in.Facts)
	if err != nil {
		return fmt.Errorf("incident %s: facts: %w", o.in.ID, err)
	}
	o.in.Incident.Facts = b
	ok, err := store.UpdateIncidentTx(o.ctx, o.tx, &o.in.Incident, o.prevState, o.now)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("incident %s changed meanwhile (was %s); try again", o.in.ID, o.prevState)
	}
	o.prevState = o.in.State
	return nil
}

// Do runs fn on incident id in one write transaction and returns what
// fn reported. The CLI uses it; keywords run the same functions inside
// the post's transaction.
func (d *Desk) Do(ctx context.Context, id string, actor Actor, fn func(o *Op) error) (string, error) {
	var o *op
	err := d.DB.Write(ctx, func(tx *sql.Tx) error {
		var err error
		o, err = d.doTx(ctx, tx, id, actor, fn)
		return err
	})
	if err != nil {
		if IsRefusal(err) && strings.Contains(err.Error(), id) {
			return "", err
		}
		return "", fmt.Errorf("incident %s: %w", id, err)
	}
	d.afterCommit(o)
	return strings.Join(o.notes, "\n"), nil
}

func (d *Desk) afterCommit(o *op) {
	if o != nil && o.released {
		d.log().Info("incident released", "incident", o.in.ID)
		if d.AfterRelease != nil {
			d.AfterRelease(o.in.ID)
		}
	}
}

func (d *Desk) doTx(ctx context.Context, tx *sql.Tx, id string, actor Actor, fn func(o *Op) error) (*op, error) {
	o, err := d.beginOp(ctx, tx, id, actor)
	if err != nil {
		return nil, err
	}
	if err := fn(&Op{o}); err != nil {
		return nil, err
	}
	return o, nil
}

// Get returns incident id.
func (d *Desk) Get(ctx context.Context, id string) (*Incident, error) {
	var in *Incident
	err := d.DB.Read(ctx, func(tx *sql.Tx) (err error) {
		in, err = d.load(ctx, tx, id)
		return err
	})
	return in, err
}

// List returns every incident, oldest first.
func (d *Desk) List(ctx context.Context) ([]*Incident, error) {
	var out []*Incident
	err := d.DB.Read(ctx, func(tx *sql.Tx) error {
		ins, err := store.IncidentsTx(ctx, tx)
		if err != nil {
			return err
		}
		for _, si := range ins {
			in, err := decode(si)
			if err != nil {
				return err
			}
			out = append(out, in)
		}
		return nil
	})
	return out, err
}

// Timeline returns the incident's events and downstreams.
func (d *Desk) Timeline(ctx context.Context, id string) ([]store.IncidentEvent, []store.Downstream, error) {
	var evs []store.IncidentEvent
	var ds []store.Downstream
	err := d.DB.Read(ctx, func(tx *sql.Tx) (err error) {
		if evs, err = store.IncidentEventsTx(ctx, tx, id); err != nil {
			return err
		}
		ds, err = store.DownstreamsTx(ctx, tx, id)
		return err
	})
	return evs, ds, err
}
