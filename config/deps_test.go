package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDeps(t *testing.T) {
	dir := t.TempDir()
	c, err := Parse([]byte(`domain = "example.org"
[deps]
osv_data = "osv.zip"

[[components]]
lockfile = "src/go.mod"

[[components]]
name = "zlib"
ecosystem = "Debian:12"
version = "1:1.2.13.dfsg-1"
`), "cvd.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	d := c.Deps
	if !d.Configured() || d.OSVData != filepath.Join(dir, "osv.zip") || d.CheckEvery != 24*time.Hour || len(d.Components) != 2 ||
		d.Components[0].Lockfile != filepath.Join(dir, "src", "go.mod") || d.Components[1].Ecosystem != "Debian:12" {
		t.Errorf("deps = %+v", d)
	}
	for _, tc := range []struct{ name, text, want string }{
		{"both sources", "[deps]\nosv_api = \"https://api.osv.dev\"\nosv_data = \"x\"\n", "deps.osv_data: set one of"},
		{"api url", "[deps]\nosv_api = \"api.osv.dev\"\n", "deps.osv_api"},
		{"every", "[deps]\ncheck_every = \"5m\"\n", "deps.check_every"},
		{"not a lockfile", "[[components]]\nlockfile = \"src/main.go\"\n", "components[1].lockfile: \"src/main.go\" is not a lockfile"},
		{"lockfile and name", "[[components]]\nlockfile = \"go.mod\"\nname = \"x\"\n", "components[1].lockfile: set either"},
		{"no version", "[[components]]\nname = \"zlib\"\necosystem = \"Debian\"\n", "components[1].name: a component needs"},
		{"ecosystem", "[[components]]\nname = \"zlib\"\necosystem = \"debain\"\nversion = \"1\"\n", "components[1].ecosystem"},
		{"typo", "[[components]]\nlockfle = \"go.mod\"\n", `did you mean "components.lockfile"`},
	} {
		_, err := Parse([]byte("domain = \"example.org\"\n"+tc.text), "bad.toml", dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.toml") {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
