package mailserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// STSPolicy is a domain's MTA-STS policy (RFC 8461 3.2).
type STSPolicy struct {
	ID     string
	Mode   string // "enforce", "testing" or "none"
	MX     []string
	MaxAge time.Duration
}

// Matches reports whether the MX host name matches one of the policy's
// mx patterns ("mail.example.org" or "*.example.org", one label).
func (p *STSPolicy) Matches(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.MX {
		pat = strings.ToLower(pat)
		if rest, ok := strings.CutPrefix(pat, "*."); ok {
			if _, suffix, ok := strings.Cut(host, "."); ok && suffix == rest {
				return true
			}
		} else if host == pat {
			return true
		}
	}
	return false
}

// TXTResolver looks up TXT records; *net.Resolver is one.
type TXTResolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// MTASTS finds and caches the MTA-STS policies of recipient domains.
type MTASTS struct {
	// Resolver finds _mta-sts TXT records; net.DefaultResolver when nil.
	Resolver TXTResolver
	// HTTP fetches policies over HTTPS, verifying the certificate of
	// mta-sts.DOMAIN; a client with a 30s timeout when nil.
	HTTP *http.Client
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu    sync.Mutex
	cache map[string]cachedPolicy
}

type cachedPolicy struct {
	p       *STSPolicy
	expires time.Time
}

// maxPolicyBytes bounds a policy body (RFC 8461 3.3: 64 KiB).
const maxPolicyBytes = 64 << 10

// Policy returns domain's policy, or nil when it publishes none. A cached
// policy is used while its max_age lasts and its TXT id is unchanged (or
// the TXT record cannot be read); a policy that cannot be fetched leaves
// the cached one in force (RFC 8461 5.1).
func (m *MTASTS) Policy(ctx context.Context, domain string) (*STSPolicy, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	now := m.now()
	m.mu.Lock()
	c, cached := m.cache[domain]
	m.mu.Unlock()
	if cached && now.After(c.expires) {
		cached = false
	}
	id, err := m.txtID(ctx, domain)
	switch {
	case err != nil || id == "":
		if cached {
			return c.p, nil
		}
		return nil, err
	case cached && c.p.ID == id:
		return c.p, nil
	}
	p, err := m.fetch(ctx, domain)
	if err != nil {
		if cached {
			return c.p, nil
		}
		return nil, err
	}
	p.ID = id
	m.mu.Lock()
	if m.cache == nil {
		m.cache = map[string]cachedPolicy{}
	}
	m.cache[domain] = cachedPolicy{p: p, expires: now.Add(p.MaxAge)}
	m.mu.Unlock()
	return p, nil
}

func (m *MTASTS) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// txtID returns the id of domain's "v=STSv1" record, "" when there is none.
func (m *MTASTS) txtID(ctx context.Context, domain string) (string, error) {
	r := m.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	txts, err := r.LookupTXT(ctx, "_mta-sts."+domain+".")
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("mta-sts: TXT _mta-sts.%s: %w", domain, err)
	}
	var ids []string
	for _, t := range txts {
		if !strings.HasPrefix(t, "v=STSv1;") {
			continue
		}
		for _, kv := range strings.Split(t, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && k == "id" {
				ids = append(ids, v)
			}
		}
	}
	if len(ids) != 1 {
		return "", nil // none, or ambiguous: no policy (RFC 8461 3.1)
	}
	return ids[0], nil
}

func (m *MTASTS) fetch(ctx context.Context, domain string) (*STSPolicy, error) {
	hc := m.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	url := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("mta-sts: %w", err)
	}
	// Redirects are not followed (RFC 8461 3.3).
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mta-sts: fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mta-sts: fetch %s: %s", url, resp.Status)
	}
	return parseSTSPolicy(io.LimitReader(resp.Body, maxPolicyBytes))
}

func parseSTSPolicy(r io.Reader) (*STSPolicy, error) {
	p := &STSPolicy{}
	sc := bufio.NewScanner(r)
	version := ""
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "version":
			version = v
		case "mode":
			p.Mode = v
		case "mx":
			p.MX = append(p.MX, v)
		case "max_age":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || n > 31557600 {
				return nil, fmt.Errorf("mta-sts: max_age %q", v)
			}
			p.MaxAge = time.Duration(n) * time.Second
		}
	}
	if version != "STSv1" {
		return nil, fmt.Errorf("mta-sts: version %q", version)
	}
	switch p.Mode {
	case "enforce", "testing", "none":
	default:
		return nil, fmt.Errorf("mta-sts: mode %q", p.Mode)
	}
	if p.Mode != "none" && len(p.MX) == 0 {
		return nil, errors.New("mta-sts: no mx")
	}
	return p, nil
}
