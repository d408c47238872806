// Package deps matches the components a project ships (from its lockfiles,
// or named by hand) against OSV vulnerability records, read from the OSV
// API or from an offline folder or zip of OSV JSON, and writes the VEX
// documents (CSAF VEX, OpenVEX) that state a component's vulnerability
// does not affect the project. It knows nothing of incidents.
package deps

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// MaxRecordBytes bounds one OSV record (the largest published ones are a
// few hundred KiB).
const MaxRecordBytes = 8 << 20

// maxRecords bounds the records read from one folder or zip.
const maxRecords = 1_000_000

// Advisory is one OSV vulnerability record, with the fields matching and
// the incident need.
type Advisory struct {
	ID        string     `json:"id"`
	Modified  time.Time  `json:"modified"`
	Published time.Time  `json:"published"`
	Withdrawn *time.Time `json:"withdrawn,omitempty"`
	Aliases   []string   `json:"aliases,omitempty"`
	Related   []string   `json:"related,omitempty"`
	Summary   string     `json:"summary,omitempty"`
	Details   string     `json:"details,omitempty"`
	Affected  []Affected `json:"affected,omitempty"`
	// References are the record's links (advisory, fix, report, ...).
	References []struct {
		Type string `json:"type"`
		URL  string `json:"url"`
	} `json:"references,omitempty"`
}

// Affected is one affected package of an advisory.
type Affected struct {
	Package struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
		PURL      string `json:"purl,omitempty"`
	} `json:"package"`
	Ranges   []Range  `json:"ranges,omitempty"`
	Versions []string `json:"versions,omitempty"`
}

// Range is one OSV range: events in version order.
type Range struct {
	Type   string  `json:"type"`
	Repo   string  `json:"repo,omitempty"`
	Events []Event `json:"events"`
}

// Event is one OSV range event; exactly one field is set.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// IsWithdrawn reports whether the record was withdrawn: it matches
// nothing.
func (a *Advisory) IsWithdrawn() bool { return a.Withdrawn != nil && !a.Withdrawn.IsZero() }

// URL is the advisory's page on osv.dev.
func (a *Advisory) URL() string { return "https://osv.dev/vulnerability/" + a.ID }

// CVEs returns the advisory's CVE aliases.
func (a *Advisory) CVEs() []string {
	var out []string
	for _, x := range a.Aliases {
		if strings.HasPrefix(x, "CVE-") {
			out = append(out, x)
		}
	}
	return out
}

// ParseAdvisory reads one OSV record. A record that is not JSON, has no
// ID, or whose affected entries or ranges are malformed is refused with
// the reason.
func ParseAdvisory(data []byte) (*Advisory, error) {
	if len(data) > MaxRecordBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxRecordBytes)
	}
	var a Advisory
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&a); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("not JSON at byte %d: %v", se.Offset, err)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, fmt.Errorf("not an OSV record: field %q holds a JSON %s", te.Field, te.Value)
		}
		if errors.As(err, &te) {
			return nil, fmt.Errorf("not an OSV record: a JSON %s instead of an object", te.Value)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, errors.New("not JSON: the text ends early (truncated?)")
		}
		return nil, fmt.Errorf("not an OSV record: %v", err)
	}
	if dec.More() {
		return nil, errors.New("not an OSV record: more than one JSON value")
	}
	if err := a.check(); err != nil {
		return nil, err
	}
	return &a, nil
}

func (a *Advisory) check() error {
	if strings.TrimSpace(a.ID) == "" || strings.ContainsAny(a.ID, " \t\r\n/\\") || len(a.ID) > 100 {
		return fmt.Errorf("not an OSV record: id %q is missing or not an identifier", a.ID)
	}
	for i, af := range a.Affected {
		if af.Package.Name == "" || af.Package.Ecosystem == "" {
			if af.Package.Name == "" && af.Package.Ecosystem == "" && af.Package.PURL == "" {
				// An affected entry without a package (e.g. only ranges of
				// type GIT) matches no component.
				continue
			}
			return fmt.Errorf("%s: affected[%d]: the package needs both name and ecosystem", a.ID, i)
		}
		for j, r := range af.Ranges {
			if r.Type != "SEMVER" && r.Type != "ECOSYSTEM" && r.Type != "GIT" {
				return fmt.Errorf("%s: affected[%d].ranges[%d]: type %q is not SEMVER, ECOSYSTEM or GIT", a.ID, i, j, r.Type)
			}
			intro := false
			for _, e := range r.Events {
				n := 0
				for _, v := range []string{e.Introduced, e.Fixed, e.LastAffected, e.Limit} {
					if v != "" {
						n++
					}
				}
				if n != 1 {
					return fmt.Errorf("%s: affected[%d].ranges[%d]: each event needs exactly one of introduced, fixed, last_affected, limit", a.ID, i, j)
				}
				intro = intro || e.Introduced != ""
			}
			if !intro {
				return fmt.Errorf("%s: affected[%d].ranges[%d]: no introduced event", a.ID, i, j)
			}
		}
	}
	return nil
}

// RecordError is a record of a folder or zip that could not be read.
type RecordError struct {
	File string
	Err  error
}

func (e *RecordError) Error() string { return fmt.Sprintf("OSV record %s: %v", e.File, e.Err) }

func (e *RecordError) Unwrap() error { return e.Err }

// Load reads the OSV records of a folder (every *.json below it) or of a
// zip file (as osv.dev publishes them per ecosystem). Records that cannot
// be read are left out and returned as RecordErrors joined in bad; err is
// set only when the source itself cannot be read.
func Load(path string) (advs []*Advisory, bad error, err error) {
	advs, _, bad, err = load(path, nil)
	return advs, bad, err
}

// load is Load keeping only the records keep accepts (all when nil); n
// counts the records read.
func load(path string, keep func(*Advisory) bool) (advs []*Advisory, n int, bad error, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("OSV data: %w", err)
	}
	var errs []error
	add := func(name string, data []byte) {
		a, err := ParseAdvisory(data)
		if err != nil {
			errs = append(errs, &RecordError{File: name, Err: err})
			return
		}
		n++
		if keep == nil || keep(a) {
			advs = append(advs, a)
		}
	}
	if fi.IsDir() {
		files := 0
		err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(strings.ToLower(d.Name()), ".json") {
				return nil
			}
			if files++; files > maxRecords {
				return fmt.Errorf("more than %d records", maxRecords)
			}
			data, err := readLimited(p)
			rel, _ := filepath.Rel(path, p)
			if err != nil {
				errs = append(errs, &RecordError{File: rel, Err: err})
				return nil
			}
			add(rel, data)
			return nil
		})
		if err != nil {
			return nil, 0, nil, fmt.Errorf("OSV data %s: %w", path, err)
		}
	} else {
		zr, err := zip.OpenReader(path)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("OSV data %s: not a folder or a zip file: %w", path, err)
		}
		defer zr.Close()
		if len(zr.File) > maxRecords {
			return nil, 0, nil, fmt.Errorf("OSV data %s: more than %d records", path, maxRecords)
		}
		for _, f := range zr.File {
			if f.FileInfo().IsDir() || !strings.HasSuffix(strings.ToLower(f.Name), ".json") {
				continue
			}
			data, err := readZipEntry(f)
			if err != nil {
				errs = append(errs, &RecordError{File: f.Name, Err: err})
				continue
			}
			add(f.Name, data)
		}
	}
	sort.Slice(advs, func(i, j int) bool { return advs[i].ID < advs[j].ID })
	return advs, n, errors.Join(errs...), nil
}

func readLimited(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAtMost(f)
}

func readZipEntry(f *zip.File) ([]byte, error) {
	if f.UncompressedSize64 > MaxRecordBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxRecordBytes)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return readAtMost(rc)
}

// readAtMost reads r, refusing more than MaxRecordBytes whatever the
// sizes a zip header claims.
func readAtMost(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxRecordBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxRecordBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxRecordBytes)
	}
	return data, nil
}
