package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestWebSection(t *testing.T) {
	dir := t.TempDir()
	c, err := Parse([]byte(`domain = "example.org"`), "cvd.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	want := Web{Listen: "127.0.0.1:8080", BaseURL: "https://example.org", Contacts: []string{"mailto:security@example.org"},
		Languages: []string{"en"}, ExpiresIn: 180 * 24 * time.Hour}
	if !reflect.DeepEqual(c.Web, want) || c.TemplatesDir != "" {
		t.Errorf("defaults: web = %+v, templates_dir %q", c.Web, c.TemplatesDir)
	}

	c, err = Parse([]byte(`domain = "example.org"
templates_dir = "notices"
[web]
listen = ""
base_url = "https://example.org/security/"
contacts = ["mailto:security@example.org", "https://example.org/report", "tel:+1-201-555-0123"]
policy_url = "https://example.org/SECURITY.md"
policy_text = "Write to us."
languages = ["en", "de-CH"]
expires_in = "30d"
static_dir = "site"
`), "cvd.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	w := c.Web
	if w.Listen != "" || w.BaseURL != "https://example.org/security" || len(w.Contacts) != 3 || w.PolicyURL != "https://example.org/SECURITY.md" ||
		w.PolicyText != "Write to us." || len(w.Languages) != 2 || w.ExpiresIn != 30*24*time.Hour || w.StaticDir != filepath.Join(dir, "site") {
		t.Errorf("web = %+v", w)
	}
	if c.TemplatesDir != filepath.Join(dir, "notices") {
		t.Errorf("templates_dir = %q", c.TemplatesDir)
	}
}

func TestWebErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"[web]\nlisten = \"8080\"", "web.listen"},
		{"[web]\nbase_url = \"example.org\"", "web.base_url"},
		{"[web]\nbase_url = \"https://example.org/?x=1\"", "web.base_url"},
		{"[web]\ncontacts = []", "web.contacts"},
		{"[web]\ncontacts = [\"security@example.org\"]", "mailto:"},
		{"[web]\ncontacts = [\"mailto:security@example.org\\nX: y\"]", "web.contacts"},
		{"[web]\npolicy_url = \"ftp://example.org/p\"", "web.policy_url"},
		{"[web]\nlanguages = [\"en;q=1\"]", "web.languages"},
		{"[web]\nexpires_in = \"400d\"", "web.expires_in"},
		{"[web]\nexpires_in = \"1h\"", "web.expires_in"},
		{"[web]\nbase_ulr = \"https://example.org\"", `did you mean "web.base_url"`},
		{"template_dir = \"t\"", `did you mean "templates_dir"`},
	} {
		_, err := Parse([]byte("domain = \"example.org\"\n"+tc.text+"\n"), "bad.toml", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.toml") {
			t.Errorf("%q: %v; want an error naming %q", tc.text, err, tc.want)
		}
	}
}
