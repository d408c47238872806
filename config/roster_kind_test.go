package config

import (
	"strings"
	"testing"
	"time"
)

func TestRosterKind(t *testing.T) {
	base := "domain = \"example.org\"\n[[embargo.roster]]\nname = \"distros\"\nemail = \"distros@vs.openwall.org\"\n"
	c, err := Parse([]byte(base+"kind = \"list\"\nreplies = \"accept\"\nmembers = [\"security@debian.org\", \"@SUSE.de\"]\n"), "cvd.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := c.Embargo.Roster[0]
	if !r.IsList() || r.MaxEmbargo != 14*24*time.Hour || r.Replies != RepliesAccept || !r.Posts("Marcus@suse.de") || r.Posts("x@evil-suse.de") || !r.Posts("security@debian.org") {
		t.Errorf("list entry: %+v", r.RosterKind)
	}
	c, err = Parse([]byte(base), "cvd.toml", t.TempDir())
	if err != nil || c.Embargo.Roster[0].Kind != KindTeam {
		t.Errorf("default kind: %v %+v", err, c)
	}
	for _, tc := range []struct{ text, want string }{
		{"kind = \"mailinglist\"\n", "embargo.roster[1].kind: \"mailinglist\" is not a kind"},
		{"max_embargo = \"7d\"\n", "embargo.roster[1].kind: max_embargo, replies and members need kind = \"list\""},
		{"kind = \"list\"\nreplies = \"accept\"\n", "embargo.roster[1].members: replies = \"accept\" needs"},
		{"kind = \"list\"\nreplies = \"maybe\"\n", "embargo.roster[1].replies: \"maybe\" is not a policy"},
		{"kind = \"list\"\nmembers = [\"not an address\"]\n", "embargo.roster[1].members: \"not an address\""},
		{"kind = \"list\"\nmax_embargo = \"100d\"\n", "embargo.roster[1].max_embargo"},
	} {
		_, err := Parse([]byte(base+tc.text), "cvd.toml", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.text, err, tc.want)
		}
	}
	_, err = Parse([]byte("domain = \"example.org\"\n[[embargo.team]]\nemail = \"cora@example.org\"\nkind = \"list\"\n"), "cvd.toml", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "embargo.team[1]") {
		t.Errorf("kind on a team entry: %v", err)
	}
}
