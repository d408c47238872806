package deps

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/osv-scalibr/extractor/filesystem"
	"github.com/google/osv-scalibr/extractor/filesystem/language/golang/gomod"
	"github.com/google/osv-scalibr/extractor/filesystem/language/javascript/packagelockjson"
	"github.com/google/osv-scalibr/extractor/filesystem/language/python/requirements"
	"github.com/google/osv-scalibr/extractor/filesystem/language/ruby/gemfilelock"
	"github.com/google/osv-scalibr/extractor/filesystem/language/rust/cargolock"
	scalibrfs "github.com/google/osv-scalibr/fs"
)

// MaxLockfileBytes bounds a lockfile.
const MaxLockfileBytes = 64 << 20

// Component is one thing the project ships or bundles, at one version.
type Component struct {
	// Ecosystem is the OSV ecosystem: Go, npm, PyPI, RubyGems, crates.io, ...
	Ecosystem string
	Name      string
	Version   string
	// Source is the lockfile it came from ("" when named by hand).
	Source string
}

func (c Component) String() string { return c.Name + " " + c.Version + " (" + c.Ecosystem + ")" }

// Lockfiles names the lockfiles ReadLockfile understands.
var Lockfiles = []string{"go.mod", "go.sum", "package-lock.json", "Gemfile.lock", "Cargo.lock", "requirements.txt"}

// SupportedLockfile reports whether ReadLockfile reads a file of this
// name (requirements files may be named requirements-NAME.txt).
func SupportedLockfile(path string) bool {
	_, err := extractorFor(filepath.Base(path))
	return err == nil
}

func extractorFor(base string) (filesystem.Extractor, error) {
	switch {
	case base == "go.mod", base == "go.sum":
		return gomod.New(nil)
	case base == "package-lock.json":
		return packagelockjson.New(nil)
	case base == "Gemfile.lock", base == "gems.locked":
		return gemfilelock.New(nil)
	case base == "Cargo.lock":
		return cargolock.New(nil)
	case strings.HasPrefix(base, "requirements") && strings.HasSuffix(base, ".txt"):
		return requirements.New(nil)
	}
	return nil, fmt.Errorf("%s is not a lockfile cvd reads; use one of %s", base, strings.Join(Lockfiles, ", "))
}

// ReadLockfile returns the components a lockfile pins, with OSV-scalibr's
// extractors. go.sum is read through its go.mod (go.sum alone lists
// modules that are not dependencies); the Go toolchain line is not a
// component. Unpinned entries (a requirements.txt line without ==) are
// left out: they have no version to match.
func ReadLockfile(ctx context.Context, path string) (_ []Component, err error) {
	defer func() {
		// The extractors are not cvd's: a file one cannot handle is an
		// error for that lockfile, not a crash of the server.
		if r := recover(); r != nil {
			err = fmt.Errorf("lockfile %s: the parser failed: %v", path, r)
		}
	}()
	base := filepath.Base(path)
	ex, err := extractorFor(base)
	if err != nil {
		return nil, err
	}
	if base == "go.sum" {
		base = "go.mod"
		path = filepath.Join(filepath.Dir(path), base)
	}
	dir := filepath.Dir(path)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("lockfile: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("lockfile: %w", err)
	}
	if fi.IsDir() || fi.Size() > MaxLockfileBytes {
		return nil, fmt.Errorf("lockfile %s: not a file of at most %d bytes", path, MaxLockfileBytes)
	}
	inv, err := ex.Extract(ctx, &filesystem.ScanInput{FS: scalibrfs.DirFS(dir), Path: base, Root: dir, Info: fi, Reader: f})
	if err != nil {
		return nil, fmt.Errorf("lockfile %s: %w", path, err)
	}
	seen := map[Component]bool{}
	var out []Component
	for _, p := range inv.Packages {
		eco := p.Ecosystem().String()
		if p.Name == "" || p.Version == "" || eco == "" {
			continue
		}
		if eco == "Go" && p.Name == "stdlib" {
			continue
		}
		c := Component{Ecosystem: eco, Name: p.Name, Version: p.Version, Source: path}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Version < out[j].Version
	})
	return out, nil
}
