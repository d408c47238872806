package config

import (
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Deps configures the dependency check: the components the project ships
// ([[components]]) and where OSV advisories come from ([deps]).
type Deps struct {
	Components []Component
	// OSVAPI is the OSV API's base URL ("" for none); OSVData a folder or
	// zip of OSV records ("" for none). At most one is set.
	OSVAPI  string
	OSVData string
	// CheckEvery is how often 'cvd serve' checks (0: never).
	CheckEvery time.Duration
}

// Component is one [[components]] entry: a lockfile, or a name, ecosystem
// and version.
type Component struct {
	Lockfile                 string // absolute
	Name, Ecosystem, Version string
}

// Configured reports whether a check can run: components and a source.
func (d Deps) Configured() bool {
	return len(d.Components) > 0 && (d.OSVAPI != "" || d.OSVData != "")
}

type rawDeps struct {
	OSVAPI     *string `toml:"osv_api"`
	OSVData    *string `toml:"osv_data"`
	CheckEvery *age    `toml:"check_every"`
}

type rawComponent struct {
	Lockfile  *string `toml:"lockfile"`
	Name      *string `toml:"name"`
	Ecosystem *string `toml:"ecosystem"`
	Version   *string `toml:"version"`
}

// ecosystems are the OSV ecosystems whose versions cvd compares.
var ecosystems = []string{"AlmaLinux", "Alpine", "Bitnami", "CRAN", "crates.io", "Debian", "GHC", "Go", "Hackage", "Hex",
	"Maven", "npm", "NuGet", "openSUSE", "Packagist", "Pub", "PyPI", "Red Hat", "Rocky Linux", "RubyGems", "SUSE", "Ubuntu", "Wolfi"}

func lockfileName(base string) bool {
	switch base {
	case "go.mod", "go.sum", "package-lock.json", "Gemfile.lock", "gems.locked", "Cargo.lock":
		return true
	}
	return strings.HasPrefix(base, "requirements") && strings.HasSuffix(base, ".txt")
}

func (c *Config) applyDeps(r *raw, bad func(key, format string, args ...any) error) error {
	d := &c.Deps
	for i, rc := range r.Components {
		key := func(k string) string { return "components[" + strconv.Itoa(i+1) + "]." + k }
		lock, name, eco, ver := str(rc.Lockfile, ""), strings.TrimSpace(str(rc.Name, "")), strings.TrimSpace(str(rc.Ecosystem, "")), strings.TrimSpace(str(rc.Version, ""))
		switch {
		case lock != "" && (name != "" || eco != "" || ver != ""):
			return bad(key("lockfile"), "set either lockfile, or name, ecosystem and version, not both")
		case lock != "":
			if !lockfileName(filepath.Base(lock)) {
				return bad(key("lockfile"), "%q is not a lockfile cvd reads; name a go.mod, go.sum, package-lock.json, Gemfile.lock, Cargo.lock or requirements.txt", lock)
			}
			d.Components = append(d.Components, Component{Lockfile: resolve(c.DataDir, lock)})
		default:
			if name == "" || eco == "" || ver == "" {
				return bad(key("name"), "a component needs lockfile = \"PATH\", or name, ecosystem and version, e.g. name = \"zlib\", ecosystem = \"Debian\", version = \"1:1.2.13.dfsg-1\"")
			}
			known := false
			for _, e := range ecosystems {
				known = known || e == strings.SplitN(eco, ":", 2)[0]
			}
			if !known {
				return bad(key("ecosystem"), "%q is not an OSV ecosystem cvd compares versions of; use one of %s", eco, strings.Join(ecosystems, ", "))
			}
			if strings.ContainsAny(name+ver, "\r\n") {
				return bad(key("name"), "name and version must be one line each")
			}
			d.Components = append(d.Components, Component{Name: name, Ecosystem: eco, Version: ver})
		}
	}
	d.OSVAPI = strings.TrimRight(strings.TrimSpace(str(r.Deps.OSVAPI, "")), "/")
	if d.OSVAPI != "" {
		u, err := url.Parse(d.OSVAPI)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return bad("deps.osv_api", "%q is not an http(s) URL; use \"https://api.osv.dev\"", d.OSVAPI)
		}
	}
	if p := str(r.Deps.OSVData, ""); p != "" {
		d.OSVData = resolve(c.DataDir, p)
	}
	if d.OSVAPI != "" && d.OSVData != "" {
		return bad("deps.osv_data", "set one of deps.osv_api (the online API) and deps.osv_data (a folder or zip of OSV records), not both")
	}
	d.CheckEvery = 24 * time.Hour
	if r.Deps.CheckEvery != nil {
		d.CheckEvery = time.Duration(*r.Deps.CheckEvery)
	}
	if d.CheckEvery != 0 && (d.CheckEvery < time.Hour || d.CheckEvery > 30*24*time.Hour) {
		return bad("deps.check_every", "%v is out of range; use between \"1h\" and \"30d\" (default \"24h\"), or \"0s\" to check only by 'cvd deps check'", d.CheckEvery)
	}
	return nil
}
