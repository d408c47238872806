package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEmbargoSection(t *testing.T) {
	dir := t.TempDir()
	c, err := Parse([]byte(`domain = "example.org"
[embargo]
min_notice = "3d"
max_embargo = "7d"
external = ["oss-security@lists.openwall.com"]
[[embargo.team]]
email = "Alice@example.org"
key_file = "keys/alice.asc"
[[embargo.roster]]
name = "Debian"
email = "team@security.debian.org"
`), "cvd.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	e := c.Embargo
	if e.MinNotice != 72*time.Hour || e.MaxEmbargo != 7*24*time.Hour || e.ReminderBefore != 24*time.Hour || e.SubjectPrefix != "[vs]" ||
		e.Announce != "announce@example.org" || e.Project != "example.org" || len(e.External) != 1 {
		t.Errorf("embargo = %+v", e)
	}
	if len(e.Team) != 1 || e.Team[0].Email != "alice@example.org" || e.Team[0].KeyFile != filepath.Join(dir, "keys", "alice.asc") {
		t.Errorf("team = %+v", e.Team)
	}
	if len(e.Roster) != 1 || e.Roster[0].Name != "Debian" || e.Roster[0].KeyFile != "" {
		t.Errorf("roster = %+v", e.Roster)
	}
	for text, want := range map[string]string{
		"[embargo]\nmin_notice = \"30m\"":             "cvd.toml: embargo.min_notice: 30m0s is out of range",
		"[embargo]\nmax_embargo = \"1d\"":             "embargo.max_embargo: 24h0m0s is out of range",
		"[embargo]\nexternal = [\"not an address\"]":  "embargo.external: \"not an address\" is not an address",
		"[[embargo.roster]]\nemail = \"a@b.example\"": "embargo.roster[1].name: missing",
		"[[embargo.team]]\nemail = \"x\"":             "embargo.team[1].email: \"x\" is not an address",
		"[[embargo.team]]\nemial = \"a@b.example\"":   "did you mean \"embargo.team.email\"",
		"[embargo]\nmin_notise = \"48h\"":             "did you mean \"embargo.min_notice\"",
	} {
		_, err := Parse([]byte("domain = \"example.org\"\n"+text), "cvd.toml", dir)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
}
