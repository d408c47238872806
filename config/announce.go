package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Announce configures where a release is announced besides mail.
type Announce struct {
	// Webhooks get a signed JSON event at each release.
	Webhooks []Webhook
}

// Webhook is an HTTP endpoint that gets a signed JSON event at each
// release.
type Webhook struct {
	// Name identifies the endpoint in the queue and the logs (default:
	// the URL's host).
	Name string
	URL  string
	// SecretFile holds the HMAC secret (absolute path).
	SecretFile string
	// Timeout bounds one attempt.
	Timeout time.Duration
}

type rawAnnounce struct {
	Webhook []struct {
		Name       *string        `toml:"name"`
		URL        *string        `toml:"url"`
		SecretFile *string        `toml:"secret_file"`
		Timeout    *time.Duration `toml:"timeout"`
	} `toml:"webhook"`
}

func init() {
	keys = append(keys, "announce", "announce.webhook", "announce.webhook.name", "announce.webhook.url",
		"announce.webhook.secret_file", "announce.webhook.timeout", "embargo.roster.category")
}

func (c *Config) applyAnnounce(r *raw, bad func(key, format string, args ...any) error) error {
	seen := map[string]bool{}
	for i, rw := range r.Announce.Webhook {
		k := fmt.Sprintf("announce.webhook[%d]", i+1)
		w := Webhook{URL: strings.TrimSpace(str(rw.URL, ""))}
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Opaque != "" {
			return bad(k+".url", "%q is not an http(s) URL; give the receiver's address, e.g. url = \"https://chat.example.org/hooks/cvd\"", w.URL)
		}
		if u.User != nil {
			return bad(k+".url", "holds a user name or password; remove it: the receiver checks the HMAC made with secret_file")
		}
		if u.Fragment != "" {
			return bad(k+".url", "has a #fragment; remove it")
		}
		w.Name = strings.TrimSpace(str(rw.Name, u.Host))
		if w.Name == "" || strings.ContainsAny(w.Name, " \t\r\n") || len(w.Name) > 64 {
			return bad(k+".name", "must be a short word without spaces, e.g. name = \"chat\"")
		}
		if seen[w.Name] {
			return bad(k+".name", "%q names two webhooks; give each a name of its own, e.g. name = \"blog\"", w.Name)
		}
		seen[w.Name] = true
		sf := strings.TrimSpace(str(rw.SecretFile, ""))
		if sf == "" {
			return bad(k+".secret_file", "missing; put a random secret of at least 32 characters in a file (e.g. 'openssl rand -hex 32 > webhook-%s.secret') and name it here", w.Name)
		}
		w.SecretFile = resolve(c.DataDir, sf)
		w.Timeout = 10 * time.Second
		if rw.Timeout != nil {
			w.Timeout = *rw.Timeout
		}
		if w.Timeout < 100*time.Millisecond || w.Timeout > 5*time.Minute {
			return bad(k+".timeout", "%v is out of range; use between \"100ms\" and \"5m\" (default \"10s\")", w.Timeout)
		}
		c.Announce.Webhooks = append(c.Announce.Webhooks, w)
	}
	return nil
}

// Roster categories: who a downstream is, for 'notify --category' and
// the post-mortem.
const (
	CategoryDistribution = "distribution"
	CategoryVendor       = "vendor"
	CategoryService      = "service-provider"
)

// Categories are the roster categories, in the order reports list them.
var Categories = []string{CategoryDistribution, CategoryVendor, CategoryService}

// ParseCategory returns the category s names (aliases: distro, bundler,
// cloud, provider, service); ok is false for anything else.
func ParseCategory(s string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "distribution", "distro", "distributions":
		return CategoryDistribution, true
	case "vendor", "bundler", "vendors":
		return CategoryVendor, true
	case "service-provider", "service", "provider", "cloud":
		return CategoryService, true
	}
	return "", false
}

// applyRosterCategories reads embargo.roster[].category.
func (c *Config) applyRosterCategories(r *raw, bad func(key, format string, args ...any) error) error {
	for i, rc := range r.Embargo.Roster {
		if rc.Category == nil || i >= len(c.Embargo.Roster) {
			continue
		}
		cat, ok := ParseCategory(*rc.Category)
		if !ok {
			return bad(fmt.Sprintf("embargo.roster[%d].category", i+1), "%q is not a category; use \"distribution\", \"vendor\" (vendors and bundlers) or \"service-provider\" (cloud and service providers)", *rc.Category)
		}
		c.Embargo.Roster[i].Category = cat
	}
	return nil
}
