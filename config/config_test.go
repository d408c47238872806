package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestExampleParsesToDefaults(t *testing.T) {
	text, err := Example("Example.ORG")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "cvd.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatalf("the example written by init does not load: %v", err)
	}
	if c.Domain != "example.org" || c.Hostname != "example.org" {
		t.Errorf("domain/hostname = %q/%q", c.Domain, c.Hostname)
	}
	if c.DataDir != dir || c.Database != filepath.Join(dir, "cvd.db") {
		t.Errorf("data dir %q, database %q; want them in %q", c.DataDir, c.Database, dir)
	}
	if c.SMTP.Listen != "127.0.0.1:2525" || c.SMTP.MaxMessageBytes != 25<<20 || c.SMTP.ReadTimeout != 10*time.Minute {
		t.Errorf("smtp = %+v", c.SMTP)
	}
	if c.TLS.KeyFile != filepath.Join(dir, "tls", "key.pem") || c.Delivery.OutboxDir != filepath.Join(dir, "outbox") {
		t.Errorf("paths not resolved against data_dir: %+v %+v", c.TLS, c.Delivery)
	}

	// The example must show every default: the same config from an almost
	// empty file.
	min, err := Parse([]byte(`domain = "example.org"`), "min.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	min.File = c.File
	if !reflect.DeepEqual(min, c) {
		t.Errorf("example differs from defaults:\n%+v\n%+v", c, min)
	}
}

func TestEmbeddedDefault(t *testing.T) {
	wd := t.TempDir()
	c, err := Default(wd)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Embedded || c.Domain != "localhost" || c.DataDir != filepath.Join(wd, "cvd-data") {
		t.Errorf("default = %+v", c)
	}
	if c.SMTP.Listen != "127.0.0.1:2525" || c.IMAP.Listen != "127.0.0.1:1143" || c.Delivery.Mode != "outbox" {
		t.Errorf("default listeners/delivery = %+v %+v %+v", c.SMTP, c.IMAP, c.Delivery)
	}
}

func TestErrorsNameFileKeyAndFix(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string
	}{
		{"typo", "domain = \"example.org\"\n[smtp]\nlisten = \"127.0.0.1:25\"\nmax_mesage_size = \"1MiB\"\n",
			[]string{"bad.toml", "smtp.max_mesage_size", "unknown key", `did you mean "smtp.max_message_size"`}},
		{"unknown table", "domain = \"example.org\"\n[frobnicate]\nx = 1\n",
			[]string{"bad.toml", "frobnicate", "unknown key"}},
		{"missing domain", "[smtp]\nlisten = \":25\"\n", []string{"bad.toml", "domain", "missing"}},
		{"bad domain", "domain = \"exa mple\"\n", []string{"bad.toml", "domain", "not a valid domain"}},
		{"bad listen", "domain = \"a.org\"\n[smtp]\nlisten = \"2525\"\n", []string{"smtp.listen", "HOST:PORT"}},
		{"bad size", "domain = \"a.org\"\n[smtp]\nmax_message_size = \"lots\"\n", []string{"bad.toml", "max_message_size", "25MiB"}},
		{"tiny size", "domain = \"a.org\"\n[smtp]\nmax_message_size = 10\n", []string{"smtp.max_message_size", "too small"}},
		{"wrong type", "domain = \"a.org\"\n[smtp]\nlisten = 25\n", []string{"bad.toml: smtp.listen: line 3", "incompatible types"}},
		{"bad duration", "domain = \"a.org\"\n[smtp]\nread_timeout = \"soon\"\n", []string{"bad.toml", "read_timeout"}},
		{"short duration", "domain = \"a.org\"\n[smtp]\nread_timeout = \"1ms\"\n", []string{"smtp.read_timeout", "at least"}},
		{"syntax", "domain = \"a.org\n", []string{"bad.toml", "line 1"}},
		{"mode", "domain = \"a.org\"\n[delivery]\nmode = \"carrier-pigeon\"\n", []string{"delivery.mode", "outbox"}},
		{"per ip", "domain = \"a.org\"\n[smtp]\nmax_connections = 5\nmax_connections_per_ip = 6\n", []string{"smtp.max_connections_per_ip", "smtp.max_connections"}},
		{"log", "domain = \"a.org\"\n[log]\nformat = \"xml\"\n", []string{"log.format", "json"}},
		{"ca file missing", "domain = \"a.org\"\n[delivery]\nca_file = \"nope.pem\"\n", []string{"delivery.ca_file", "nope.pem", "PEM"}},
		{"server name", "domain = \"a.org\"\n[delivery]\nserver_name = \"not a name\"\n", []string{"delivery.server_name", "certificate"}},
		{"signature age", "domain = \"a.org\"\n[lists]\nmax_signature_age = \"1m\"\n", []string{"lists.max_signature_age", "7d"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text), "bad.toml", t.TempDir())
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]int64{"25MiB": 25 << 20, "512 KiB": 512 << 10, "10MB": 10e6, "2048": 2048, "1g": 1 << 30} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "MiB", "1.5MiB", "99999999999999999999"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}
