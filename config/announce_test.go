package config

import (
	"strings"
	"testing"
)

func TestWebhooksAndCategories(t *testing.T) {
	c, err := Parse([]byte(`domain = "example.org"
[[announce.webhook]]
url = "https://chat.example.org/hooks/cvd"
secret_file = "chat.secret"
[[announce.webhook]]
name = "blog"
url = "http://127.0.0.1:9000/build"
secret_file = "/etc/cvd/blog.secret"
timeout = "2s"
[[embargo.roster]]
name = "Debian"
email = "security@debian.example"
category = "distro"
[[embargo.roster]]
name = "Cloud"
email = "sec@cloud.example"
category = "cloud"
[[embargo.roster]]
name = "Other"
email = "sec@other.example"
`), "ok.toml", "/srv/cvd")
	if err != nil {
		t.Fatal(err)
	}
	w := c.Announce.Webhooks
	if len(w) != 2 || w[0].Name != "chat.example.org" || w[0].SecretFile != "/srv/cvd/chat.secret" || w[0].Timeout.String() != "10s" ||
		w[1].Name != "blog" || w[1].Timeout.String() != "2s" {
		t.Errorf("webhooks: %+v", w)
	}
	r := c.Embargo.Roster
	if r[0].Category != CategoryDistribution || r[1].Category != CategoryService || r[2].Category != "" {
		t.Errorf("categories: %+v", r)
	}
	for _, tc := range []struct{ text, want string }{
		{"[[announce.webhook]]\nurl = \"ftp://x.example/\"\nsecret_file = \"s\"", "announce.webhook[1].url"},
		{"[[announce.webhook]]\nurl = \"https://user:pw@x.example/\"\nsecret_file = \"s\"", "user name or password"},
		{"[[announce.webhook]]\nurl = \"https://x.example/\"", "announce.webhook[1].secret_file"},
		{"[[announce.webhook]]\nurl = \"https://x.example/a\"\nsecret_file = \"s\"\n[[announce.webhook]]\nurl = \"https://x.example/b\"\nsecret_file = \"s\"", "announce.webhook[2].name"},
		{"[[announce.webhook]]\nurl = \"https://x.example/\"\nsecret_file = \"s\"\ntimeout = \"1h\"", "announce.webhook[1].timeout"},
		{"[[embargo.roster]]\nname = \"X\"\nemail = \"x@x.example\"\ncategory = \"friends\"", "embargo.roster[1].category"},
		{"[[announce.webhooks]]\nurl = \"https://x.example/\"", "did you mean"},
	} {
		_, err := Parse([]byte("domain = \"example.org\"\n"+tc.text), "bad.toml", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.toml") {
			t.Errorf("%s:\n  got %v, want %q", tc.text, err, tc.want)
		}
	}
}
