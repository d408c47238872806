package publish

import (
	"bytes"
	"context"
	"crypto/sha1"
	"embed"
	"encoding/xml"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

//go:embed web/*.html web/style.css
var webFS embed.FS

// PublicKey is an OpenPGP public key to publish in the Web Key Directory
// for one address.
type PublicKey struct {
	Email string // "security@example.org"
	Key   []byte // armored or binary transferable public key
}

// Source is what the site shows: only what it returns is ever reachable.
type Source interface {
	// Published returns the released advisories.
	Published(ctx context.Context) ([]Advisory, error)
	// Keys returns the public keys to publish (the project's, the lists').
	Keys(ctx context.Context) ([]PublicKey, error)
}

// SiteConfig configures the public site.
type SiteConfig struct {
	Project Project
	// Contacts are security.txt Contact URIs; default mailto:security@Domain.
	Contacts []string
	// PolicyURL is security.txt's Policy; default the site's policy page.
	PolicyURL string
	// PolicyText replaces the default text of the policy page (plain text,
	// paragraphs separated by blank lines).
	PolicyText string
	// Languages are security.txt's Preferred-Languages; default "en".
	Languages []string
	// ExpiresIn is how far ahead security.txt's Expires lies; default 180
	// days (RFC 9116 asks for less than a year).
	ExpiresIn time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Sign, if set, turns security.txt into an OpenPGP cleartext-signed
	// message (it is given the unsigned text).
	Sign func(text []byte) ([]byte, error)
}

// Site serves the project's public security pages. It is an http.Handler.
type Site struct {
	src  Source
	cfg  SiteConfig
	tmpl map[string]*template.Template
}

// NewSite returns the site for src.
func NewSite(src Source, cfg SiteConfig) (*Site, error) {
	if src == nil {
		return nil, errors.New("publish: site needs a source")
	}
	p := cfg.Project
	if p.Name == "" || p.Vendor == "" || p.Domain == "" {
		return nil, errors.New("publish: site needs the project's name, vendor and domain")
	}
	if p.URL != "" {
		if err := checkURL(p.URL); err != nil {
			return nil, fmt.Errorf("publish: project url: %w", err)
		}
	}
	if len(cfg.Contacts) == 0 {
		cfg.Contacts = []string{"mailto:security@" + p.Domain}
	}
	if len(cfg.Languages) == 0 {
		cfg.Languages = []string{"en"}
	}
	if cfg.ExpiresIn <= 0 {
		cfg.ExpiresIn = 180 * 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Site{src: src, cfg: cfg, tmpl: map[string]*template.Template{}}
	funcs := template.FuncMap{
		"lower":      func(s Severity) string { return strings.ToLower(string(s)) },
		"date":       func(t time.Time) string { return t.UTC().Format("2006-01-02") },
		"datetime":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
		"paragraphs": paragraphs,
		"join":       strings.Join,
		"affected":   affectedText,
	}
	for _, page := range []string{"index", "advisory", "acknowledgements", "policy", "unsubscribe"} {
		t, err := template.New(page).Funcs(funcs).ParseFS(webFS, "web/layout.html", "web/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("publish: template %s: %w", page, err)
		}
		s.tmpl[page] = t
	}
	return s, nil
}

func paragraphs(text string) []string {
	var ps []string
	for _, p := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			ps = append(ps, p)
		}
	}
	return ps
}

// siteInfo is what every template sees as .Site.
type siteInfo struct {
	Project    Project
	Security   string // security@Domain
	KeyURL     string // WKD URL of that address's key, if published
	PolicyText string
}

// file is one resource of the site.
type file struct {
	ctype  string
	alias  bool // another path of the same resource (not written by BuildStatic)
	render func() ([]byte, error)
}

// files returns every path of the site. Only released advisories whose
// publication time has come are included.
func (s *Site) files(ctx context.Context) (map[string]file, error) {
	now := s.cfg.Now()
	all, err := s.src.Published(ctx)
	if err != nil {
		return nil, fmt.Errorf("publish: list advisories: %w", err)
	}
	var advs []*Advisory
	for i := range all {
		a := &all[i]
		if a.Status != Released || a.Published.IsZero() || a.Published.After(now) || !ValidID(a.ID) {
			continue
		}
		a.Project = s.cfg.Project
		if a.Validate() != nil {
			continue
		}
		advs = append(advs, a)
	}
	sort.SliceStable(advs, func(i, j int) bool {
		if !advs[i].Published.Equal(advs[j].Published) {
			return advs[i].Published.After(advs[j].Published)
		}
		return advs[i].ID > advs[j].ID
	})
	keys, err := s.src.Keys(ctx)
	if err != nil {
		return nil, fmt.Errorf("publish: list keys: %w", err)
	}
	wkd, err := s.wkd(keys)
	if err != nil {
		return nil, err
	}

	security := "security@" + s.cfg.Project.Domain
	info := siteInfo{Project: s.cfg.Project, Security: security, PolicyText: s.cfg.PolicyText}
	if _, ok := wkd[WKDPath(security)]; ok {
		info.KeyURL = ".well-known/openpgpkey/hu/" + path.Base(WKDPath(security))
	}

	fs := map[string]file{}
	page := func(name, title, root string, data map[string]any) file {
		return file{ctype: "text/html; charset=utf-8", render: func() ([]byte, error) {
			d := map[string]any{"Title": title, "Root": root, "Site": info}
			for k, v := range data {
				d[k] = v
			}
			if ki, ok := d["Site"].(siteInfo); ok && ki.KeyURL != "" {
				ki.KeyURL = root + ki.KeyURL
				d["Site"] = ki
			}
			var b bytes.Buffer
			if err := s.tmpl[name].ExecuteTemplate(&b, "layout", d); err != nil {
				return nil, fmt.Errorf("publish: render %s: %w", name, err)
			}
			return b.Bytes(), nil
		}}
	}
	var vex []VEXDocument
	if vs, ok := s.src.(VEXSource); ok {
		if vex, err = vs.VEX(ctx); err != nil {
			return nil, fmt.Errorf("publish: list VEX statements: %w", err)
		}
		sort.SliceStable(vex, func(i, j int) bool { return vex[i].Date.After(vex[j].Date) })
	}
	p := s.cfg.Project
	index := page("index", p.Name+" security advisories", "", map[string]any{"Advisories": advs, "VEX": vex})
	fs["/index.html"] = index
	fs["/"] = file{ctype: index.ctype, alias: true, render: index.render}
	for _, v := range vex {
		if !ValidID(v.ID) {
			continue
		}
		csaf, ov := v.CSAF, v.OpenVEX
		fs["/vex/"+v.ID+".csaf.json"] = file{ctype: "application/json", render: func() ([]byte, error) { return csaf, nil }}
		fs["/vex/"+v.ID+".openvex.json"] = file{ctype: "application/json", render: func() ([]byte, error) { return ov, nil }}
	}
	advIndex := page("index", p.Name+" security advisories", "../", map[string]any{"Advisories": advs, "VEX": vex})
	fs["/advisories/index.html"] = advIndex
	fs["/advisories/"] = file{ctype: index.ctype, alias: true, render: advIndex.render}
	fs["/acknowledgements.html"] = page("acknowledgements", "Acknowledgements · "+p.Name, "", s.thanks(advs))
	fs["/policy.html"] = page("policy", "Security policy · "+p.Name, "", nil)
	fs["/style.css"] = file{ctype: "text/css; charset=utf-8", render: func() ([]byte, error) { return webFS.ReadFile("web/style.css") }}
	fs["/advisories.atom"] = file{ctype: "application/atom+xml; charset=utf-8", render: func() ([]byte, error) { return s.atom(advs, now) }}
	fs["/.well-known/security.txt"] = file{ctype: "text/plain; charset=utf-8", render: func() ([]byte, error) { return s.securityTxt(wkd, now) }}
	// The direct method, and the advanced one for when openpgpkey.DOMAIN
	// is pointed at this site too.
	empty := func() ([]byte, error) { return []byte{}, nil }
	fs["/.well-known/openpgpkey/policy"] = file{ctype: "text/plain; charset=utf-8", render: empty}
	domain := strings.ToLower(p.Domain)
	fs["/.well-known/openpgpkey/"+domain+"/policy"] = file{ctype: "text/plain; charset=utf-8", render: empty}
	for pth, key := range wkd {
		fs[pth] = file{ctype: "application/octet-stream", render: func() ([]byte, error) { return key, nil }}
		fs["/.well-known/openpgpkey/"+domain+"/hu/"+path.Base(pth)] = fs[pth]
	}
	for _, a := range advs {
		a := a
		base := "/advisories/" + a.ID
		_, cveErr := CVERecord(a)
		pg := page("advisory", a.FullID()+": "+a.Title, "../", map[string]any{"Advisory": a, "HasCVE": cveErr == nil})
		fs[base+".html"] = pg
		fs[base] = file{ctype: pg.ctype, alias: true, render: pg.render}
		fs[base+".osv.json"] = file{ctype: "application/json", render: func() ([]byte, error) { return OSV(a) }}
		fs[base+".csaf.json"] = file{ctype: "application/json", render: func() ([]byte, error) { return CSAF(a) }}
		if cveErr == nil {
			fs[base+".cve.json"] = file{ctype: "application/json", render: func() ([]byte, error) { return CVERecord(a) }}
		}
		fs[base+".txt"] = file{ctype: "text/plain; charset=utf-8", render: func() ([]byte, error) {
			t, err := TextAdvisory(a)
			return []byte(t), err
		}}
	}
	return fs, nil
}

type thank struct {
	Name, Contact string
	Entries       []thankEntry
}

type thankEntry struct{ ID, FullID, Role string }

// thanks gathers the credits of all advisories by name.
func (s *Site) thanks(advs []*Advisory) map[string]any {
	byName := map[string]*thank{}
	anonymous := 0
	for _, a := range advs {
		for _, c := range a.Credits {
			if c.DisplayName() == AnonymousName {
				anonymous++
				continue
			}
			t := byName[c.Name]
			if t == nil {
				t = &thank{Name: c.Name}
				byName[c.Name] = t
			}
			if t.Contact == "" {
				t.Contact = c.Contact
			}
			t.Entries = append(t.Entries, thankEntry{ID: a.ID, FullID: a.FullID(), Role: c.Kind().Words()})
		}
	}
	var list []*thank
	for _, t := range byName {
		list = append(list, t)
	}
	sort.Slice(list, func(i, j int) bool { return strings.ToLower(list[i].Name) < strings.ToLower(list[j].Name) })
	return map[string]any{"Thanks": list, "Anonymous": anonymous}
}

// ---- Atom ----

type atomLink struct {
	Href string `xml:"href,attr"`
	Rel  string `xml:"rel,attr,omitempty"`
	Type string `xml:"type,attr,omitempty"`
}

type atomEntry struct {
	Title     string     `xml:"title"`
	ID        string     `xml:"id"`
	Link      []atomLink `xml:"link"`
	Published string     `xml:"published"`
	Updated   string     `xml:"updated"`
	Summary   string     `xml:"summary"`
}

type atomFeed struct {
	XMLName xml.Name `xml:"http://www.w3.org/2005/Atom feed"`
	Title   string   `xml:"title"`
	ID      string   `xml:"id"`
	Updated string   `xml:"updated"`
	Author  struct {
		Name  string `xml:"name"`
		Email string `xml:"email"`
	} `xml:"author"`
	Link    []atomLink  `xml:"link"`
	Entries []atomEntry `xml:"entry"`
}

func (s *Site) atom(advs []*Advisory, now time.Time) ([]byte, error) {
	base := s.cfg.Project.BaseURL()
	f := atomFeed{Title: s.cfg.Project.Name + " security advisories", ID: base + "/advisories.atom"}
	f.Author.Name = s.cfg.Project.Vendor
	f.Author.Email = "security@" + s.cfg.Project.Domain
	f.Link = []atomLink{{Href: base + "/advisories.atom", Rel: "self", Type: "application/atom+xml"}, {Href: base + "/index.html", Rel: "alternate", Type: "text/html"}}
	updated := time.Time{}
	for _, a := range advs {
		if a.LastUpdate().After(updated) {
			updated = a.LastUpdate()
		}
		sum := a.Title
		if p := a.PrimaryScore(); p != nil {
			sum = fmt.Sprintf("%s (CVSS v%s %s %s)", sum, p.Version, p.ScoreString(), p.Severity)
		}
		if a.CVE != "" {
			sum += " " + a.CVE
		}
		f.Entries = append(f.Entries, atomEntry{
			Title:     a.FullID() + ": " + a.Title,
			ID:        a.PageURL(),
			Link:      []atomLink{{Href: a.PageURL(), Rel: "alternate", Type: "text/html"}},
			Published: rfc3339(a.Published),
			Updated:   rfc3339(a.LastUpdate()),
			Summary:   sum,
		})
	}
	if updated.IsZero() {
		updated = time.Date(now.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	}
	f.Updated = rfc3339(updated)
	b, err := xml.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("publish: atom: %w", err)
	}
	return append([]byte(xml.Header), append(b, '\n')...), nil
}

// ---- security.txt ----

func (s *Site) securityTxt(wkd map[string][]byte, now time.Time) ([]byte, error) {
	p := s.cfg.Project
	origin := p.BaseURL()
	if u, err := url.Parse(origin); err == nil {
		origin = u.Scheme + "://" + u.Host
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Security contact for %s (%s); see RFC 9116.\n", p.Name, p.Vendor)
	for _, c := range s.cfg.Contacts {
		fmt.Fprintf(&b, "Contact: %s\n", oneLine(c))
	}
	fmt.Fprintf(&b, "Expires: %s\n", rfc3339(now.Add(s.cfg.ExpiresIn).Truncate(time.Second)))
	for _, c := range s.cfg.Contacts {
		if addr, ok := strings.CutPrefix(c, "mailto:"); ok {
			if pth := WKDPath(addr); wkd[pth] != nil {
				local, _, _ := strings.Cut(addr, "@")
				fmt.Fprintf(&b, "Encryption: %s%s?l=%s\n", origin, pth, url.QueryEscape(strings.ToLower(local)))
			}
		}
	}
	fmt.Fprintf(&b, "Acknowledgments: %s/acknowledgements.html\n", p.BaseURL())
	policy := s.cfg.PolicyURL
	if policy == "" {
		policy = p.BaseURL() + "/policy.html"
	}
	fmt.Fprintf(&b, "Policy: %s\n", oneLine(policy))
	fmt.Fprintf(&b, "Canonical: %s/.well-known/security.txt\n", origin)
	fmt.Fprintf(&b, "Preferred-Languages: %s\n", oneLine(strings.Join(s.cfg.Languages, ", ")))
	if s.cfg.Sign != nil {
		signed, err := s.cfg.Sign(b.Bytes())
		if err != nil {
			return nil, fmt.Errorf("publish: sign security.txt: %w", err)
		}
		return signed, nil
	}
	return b.Bytes(), nil
}

// ---- Web Key Directory ----

const zbase32Alphabet = "ybndrfg8ejkmcpqxot1uwisza345h769"

// zbase32 encodes data in z-base-32 (RFC 6189 alphabet), as WKD hashes
// local parts.
func zbase32(data []byte) string {
	var out strings.Builder
	var buf uint32
	bits := 0
	for _, c := range data {
		buf = buf<<8 | uint32(c)
		bits += 8
		for bits >= 5 {
			out.WriteByte(zbase32Alphabet[(buf>>(bits-5))&31])
			bits -= 5
		}
	}
	if bits > 0 {
		out.WriteByte(zbase32Alphabet[(buf<<(5-bits))&31])
	}
	return out.String()
}

// WKDPath returns the direct-method Web Key Directory path of an address:
// /.well-known/openpgpkey/hu/ and the z-base-32 SHA-1 of the lowercased
// local part. It returns "" for a malformed address.
func WKDPath(email string) string {
	local, _, ok := strings.Cut(email, "@")
	if !ok || local == "" {
		return ""
	}
	sum := sha1.Sum([]byte(strings.ToLower(local)))
	return "/.well-known/openpgpkey/hu/" + zbase32(sum[:])
}

// WKDAdvancedPath returns the advanced-method path of an address (served
// on openpgpkey.DOMAIN): /.well-known/openpgpkey/DOMAIN/hu/HASH.
func WKDAdvancedPath(email string) string {
	_, domain, _ := strings.Cut(email, "@")
	direct := WKDPath(email)
	if direct == "" || domain == "" {
		return ""
	}
	return "/.well-known/openpgpkey/" + strings.ToLower(domain) + "/hu/" + path.Base(direct)
}

// binaryKey returns the key in binary form, refusing secret keys.
func binaryKey(key []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(key)
	if bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
		blk, err := armor.Decode(bytes.NewReader(trimmed))
		if err != nil {
			return nil, fmt.Errorf("decode armor: %w", err)
		}
		if blk.Type != "PGP PUBLIC KEY BLOCK" {
			return nil, fmt.Errorf("armor type %q is not a public key block", blk.Type)
		}
		if key, err = io.ReadAll(blk.Body); err != nil {
			return nil, fmt.Errorf("decode armor: %w", err)
		}
	}
	if len(key) == 0 || key[0]&0x80 == 0 {
		return nil, errors.New("not an OpenPGP key")
	}
	tag := key[0] & 0x3f // new format
	if key[0]&0x40 == 0 {
		tag = (key[0] >> 2) & 0x0f // old format
	}
	if tag != 6 {
		return nil, fmt.Errorf("first packet has tag %d, not a public key (6)", tag)
	}
	return key, nil
}

// wkd returns the WKD files for the keys of the project's domain.
func (s *Site) wkd(keys []PublicKey) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, k := range keys {
		_, domain, ok := strings.Cut(k.Email, "@")
		if !ok || !strings.EqualFold(domain, s.cfg.Project.Domain) {
			continue
		}
		bin, err := binaryKey(k.Key)
		if err != nil {
			return nil, fmt.Errorf("publish: key for %s: %w", k.Email, err)
		}
		pth := WKDPath(k.Email)
		out[pth] = append(out[pth], bin...)
	}
	return out, nil
}

// ---- serving ----

// ServeHTTP serves the site. Paths not in it, and methods other than GET
// and HEAD, get a plain error; nothing tells an unpublished advisory from
// one that does not exist.
func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	fs, err := s.files(r.Context())
	if err != nil {
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	f, ok := fs[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	body, err := f.render()
	if err != nil {
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("Cache-Control", "max-age=300")
	if strings.HasPrefix(r.URL.Path, "/.well-known/") {
		h.Set("Access-Control-Allow-Origin", "*")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// BuildStatic writes the site as files under dir, for projects that host
// their pages elsewhere. WKD files are written without the ?l= query;
// security.txt's Expires is computed at build time, so rebuild before it.
func (s *Site) BuildStatic(ctx context.Context, dir string) error {
	fs, err := s.files(ctx)
	if err != nil {
		return err
	}
	paths := make([]string, 0, len(fs))
	for p, f := range fs {
		if !f.alias {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		body, err := fs[p].render()
		if err != nil {
			return err
		}
		name := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(p, "/")))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			return fmt.Errorf("publish: build: %w", err)
		}
		if err := writeAtomic(name, body); err != nil {
			return fmt.Errorf("publish: build: %w", err)
		}
	}
	return nil
}

// writeAtomic replaces name with data through a temporary file, so that
// a web server serving the folder never sends half a file.
func writeAtomic(name string, data []byte) error {
	if old, err := os.ReadFile(name); err == nil && bytes.Equal(old, data) {
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(name), ".build-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
