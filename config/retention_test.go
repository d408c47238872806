package config

import (
	"strings"
	"testing"
	"time"
)

func TestRetention(t *testing.T) {
	c, err := Parse([]byte("domain = \"example.org\"\n[retention]\nspool = \"7d\"\ndelivered = \"0d\"\n"), "cvd.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.Retention.Spool != 7*24*time.Hour || c.Retention.Delivered != 0 {
		t.Errorf("retention = %+v", c.Retention)
	}
	for text, want := range map[string]string{
		"spool = \"2h\"":       `cvd.toml: retention.spool: 2h0m0s is too short; use at least "1d", or "0d" to keep everything`,
		"delivered = \"-3d\"":  `cvd.toml: retention.delivered: -72h0m0s is too short`,
		"delivered = \"soon\"": `"soon" is not a duration`,
		"spol = \"7d\"":        `retention.spol: unknown key (did you mean "retention.spool"?)`,
	} {
		_, err := Parse([]byte("domain = \"example.org\"\n[retention]\n"+text+"\n"), "cvd.toml", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", text, err, want)
		}
	}
}
