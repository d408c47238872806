package config

import (
	"strings"
	"time"
)

// Roster entry kinds.
const (
	// KindTeam is a distribution's security team: one address, one key,
	// acknowledgements chased.
	KindTeam = "team"
	// KindList is an encrypted list such as the distros list: sealed to the
	// list's key, "[vs]" outer Subject, a hard maximum embargo, no
	// reminders to the whole list.
	KindList = "list"
)

// Reply policies of a list entry.
const (
	RepliesHold   = "hold"
	RepliesAccept = "accept"
)

// RosterKind is what a roster entry is and how cvd treats it (the zero
// value is a team).
type RosterKind struct {
	// Kind is KindTeam or KindList.
	Kind string
	// MaxEmbargo is a list's hard maximum from the first notice (14 days
	// by default, the distros list's rule).
	MaxEmbargo time.Duration
	// Replies says what happens to posts by the list's members: held for
	// the coordinators (RepliesHold) or accepted as downstream posts.
	Replies string
	// Members are the senders that post for the list: addresses, or
	// "@domain" for a whole domain.
	Members []string
}

// IsList reports whether the entry is a list.
func (k RosterKind) IsList() bool { return k.Kind == KindList }

type rawRosterKind struct {
	Kind       *string  `toml:"kind"`
	MaxEmbargo *age     `toml:"max_embargo"`
	Replies    *string  `toml:"replies"`
	Members    []string `toml:"members"`
}

var rosterKindKeys = []string{"embargo.roster.kind", "embargo.roster.max_embargo", "embargo.roster.replies", "embargo.roster.members"}

func init() { keys = append(keys, rosterKindKeys...) }

// rosterKind validates the kind settings of roster entry k (e.g.
// "embargo.roster[2]"); roster is false for the team's entries, which
// take none.
func rosterKind(k string, rk rawRosterKind, roster bool, bad func(key, format string, args ...any) error) (RosterKind, error) {
	out := RosterKind{Kind: strings.ToLower(strings.TrimSpace(str(rk.Kind, KindTeam)))}
	if !roster {
		if rk.Kind != nil || rk.MaxEmbargo != nil || rk.Replies != nil || rk.Members != nil {
			return out, bad(k, "kind, max_embargo, replies and members are for [[embargo.roster]] entries; remove them here")
		}
		return out, nil
	}
	switch out.Kind {
	case KindTeam:
		if rk.MaxEmbargo != nil || rk.Replies != nil || rk.Members != nil {
			return out, bad(k+".kind", "max_embargo, replies and members need kind = \"list\"; set it, or remove them")
		}
		return out, nil
	case KindList:
	default:
		return out, bad(k+".kind", "%q is not a kind; use \"team\" (a distribution's security team, the default) or \"list\" (e.g. the distros list)", out.Kind)
	}
	out.MaxEmbargo = 14 * 24 * time.Hour
	if rk.MaxEmbargo != nil {
		out.MaxEmbargo = time.Duration(*rk.MaxEmbargo)
	}
	if out.MaxEmbargo < time.Hour || out.MaxEmbargo > 90*24*time.Hour {
		return out, bad(k+".max_embargo", "%v is out of range; use between \"1h\" and \"90d\" (default \"14d\", the distros list's maximum)", out.MaxEmbargo)
	}
	out.Replies = strings.ToLower(strings.TrimSpace(str(rk.Replies, RepliesHold)))
	switch out.Replies {
	case RepliesHold, RepliesAccept:
	default:
		return out, bad(k+".replies", "%q is not a policy; use \"hold\" (the coordinators decide, the default) or \"accept\" (the members' replies reach the incident)", out.Replies)
	}
	for _, m := range rk.Members {
		m = strings.ToLower(strings.TrimSpace(m))
		if d, ok := strings.CutPrefix(m, "@"); ok {
			if checkDomain(d) != nil {
				return out, bad(k+".members", "%q is not a domain; list addresses or domains like [\"security@debian.org\", \"@suse.de\"]", m)
			}
		} else if !isAddress(m) {
			return out, bad(k+".members", "%q is not an address; list addresses or domains like [\"security@debian.org\", \"@suse.de\"]", m)
		}
		out.Members = append(out.Members, m)
	}
	if out.Replies == RepliesAccept && len(out.Members) == 0 {
		return out, bad(k+".members", "replies = \"accept\" needs the list's members: list who posts for it, e.g. members = [\"security@debian.org\", \"@suse.de\"]")
	}
	return out, nil
}

// Posts reports whether sender posts for the list (matches Members).
func (k RosterKind) Posts(sender string) bool {
	sender = strings.ToLower(sender)
	for _, m := range k.Members {
		if m == sender || strings.HasPrefix(m, "@") && strings.HasSuffix(sender, m) {
			return true
		}
	}
	return false
}
