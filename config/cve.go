package config

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// CVE says how the project gets CVE IDs and who is named in its CVE
// records.
type CVE struct {
	// CNA is true when the project is a CVE Numbering Authority: it
	// reserves its IDs itself and submits the records cvd writes.
	CNA bool
	// OrgID and ShortName identify the CNA in CVE records: the project's
	// own when it is a CNA, else the CNA that assigns its IDs (may be
	// empty: then no CVE record is written).
	OrgID     string
	ShortName string
	// RequestTo is the address CVE ID requests are written to when the
	// project is not a CNA.
	RequestTo string
}

// Agenda is the coordinators' weekly mail of what is due.
type Agenda struct {
	// Every is the time between two agenda mails (0: none).
	Every time.Duration
}

type rawCVE struct {
	CNA       *bool   `toml:"cna"`
	OrgID     *string `toml:"org_id"`
	ShortName *string `toml:"short_name"`
	RequestTo *string `toml:"request_to"`
}

var orgIDRe = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[1-5][0-9A-Fa-f]{3}-[89ABab][0-9A-Fa-f]{3}-[0-9A-Fa-f]{12}$`)

func (c *Config) applyCVE(r *raw, bad func(key, format string, args ...any) error) error {
	v, rv := &c.CVE, &r.CVE
	v.CNA = rv.CNA != nil && *rv.CNA
	v.OrgID = strings.ToLower(strings.TrimSpace(str(rv.OrgID, "")))
	if v.OrgID != "" && !orgIDRe.MatchString(v.OrgID) {
		return bad("cve.org_id", "%q is not a CVE organisation ID; use the UUID CVE Services gave the CNA, e.g. \"0c8d8d8e-7d6e-4b5c-9a1b-2c3d4e5f6a7b\"", v.OrgID)
	}
	if v.CNA && v.OrgID == "" {
		return bad("cve.org_id", "missing: a CNA (cve.cna = true) names its organisation ID in every CVE record; set org_id to its UUID, or cna = false")
	}
	v.ShortName = strings.TrimSpace(str(rv.ShortName, ""))
	if strings.ContainsAny(v.ShortName, " \t\r\n") || len(v.ShortName) > 32 {
		return bad("cve.short_name", "%q is not a CNA short name; use the one word CVE Services knows, e.g. \"libexample\" (at most 32 characters)", v.ShortName)
	}
	v.RequestTo = strings.TrimSpace(str(rv.RequestTo, ""))
	if v.RequestTo != "" && !isAddress(v.RequestTo) {
		return bad("cve.request_to", "%q is not an address; give the mail address of the CNA you request IDs from", v.RequestTo)
	}
	if r.Embargo.AgendaEvery != nil {
		c.Agenda.Every = time.Duration(*r.Embargo.AgendaEvery)
	} else {
		c.Agenda.Every = 7 * 24 * time.Hour
	}
	if c.Agenda.Every != 0 && (c.Agenda.Every < time.Hour || c.Agenda.Every > 90*24*time.Hour) {
		return bad("embargo.agenda_every", "%v is out of range; use between \"1h\" and \"90d\" (default \"7d\"), or \"0d\" for no agenda mail", c.Agenda.Every)
	}
	return nil
}

// WithProject sets the project's name in a configuration text written by
// Example.
func WithProject(text, name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '"' || r == '\\' }) {
		return "", fmt.Errorf("project name %q: use one line without quotes or backslashes, e.g. libexample", name)
	}
	i := strings.Index(text, "\nproject = \"")
	if i < 0 {
		return "", fmt.Errorf("no project key in the configuration text")
	}
	j := strings.Index(text[i+1:], "\n")
	return text[:i+1] + `project = "` + name + `"` + text[i+1+j:], nil
}

func init() {
	keys = append(keys, "cve", "cve.cna", "cve.org_id", "cve.short_name", "cve.request_to", "embargo.agenda_every")
}
