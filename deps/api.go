package deps

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// maxBatch is the most queries one querybatch request carries (the OSV
// API's limit is 1000).
const maxBatch = 1000

// maxResponseBytes bounds one API response.
const maxResponseBytes = 64 << 20

// Client queries the OSV API (https://google.github.io/osv.dev/api/):
// querybatch finds the advisories of each component's version, then each
// advisory's full record is fetched.
type Client struct {
	// BaseURL is the API's base, e.g. https://api.osv.dev.
	BaseURL string
	// HTTP is the client used; a client with a 60 s timeout when nil.
	HTTP *http.Client
	// UserAgent is sent with every request.
	UserAgent string
}

type batchQuery struct {
	Package struct {
		Name      string `json:"name"`
		Ecosystem string `json:"ecosystem"`
	} `json:"package"`
	Version   string `json:"version"`
	PageToken string `json:"page_token,omitempty"`
}

type batchResponse struct {
	Results []struct {
		Vulns []struct {
			ID string `json:"id"`
		} `json:"vulns"`
		NextPageToken string `json:"next_page_token"`
	} `json:"results"`
}

// Advisories returns the records of every advisory the API lists for
// the components' versions.
func (c *Client) Advisories(ctx context.Context, components []Component) ([]*Advisory, error) {
	if _, err := url.Parse(c.BaseURL); err != nil || c.BaseURL == "" {
		return nil, fmt.Errorf("OSV API: base URL %q: give an http(s) URL such as https://api.osv.dev", c.BaseURL)
	}
	ids := map[string]bool{}
	var queries []batchQuery
	for _, comp := range components {
		var q batchQuery
		q.Package.Name, q.Package.Ecosystem, q.Version = comp.Name, comp.Ecosystem, comp.Version
		queries = append(queries, q)
	}
	for len(queries) > 0 {
		n := min(len(queries), maxBatch)
		batch := queries[:n]
		queries = queries[n:]
		var resp batchResponse
		if err := c.do(ctx, http.MethodPost, "/v1/querybatch", map[string]any{"queries": batch}, &resp); err != nil {
			return nil, err
		}
		if len(resp.Results) != len(batch) {
			return nil, fmt.Errorf("OSV API: querybatch answered %d results for %d queries", len(resp.Results), len(batch))
		}
		for i, r := range resp.Results {
			for _, v := range r.Vulns {
				ids[v.ID] = true
			}
			if r.NextPageToken != "" {
				q := batch[i]
				q.PageToken = r.NextPageToken
				queries = append(queries, q)
			}
		}
	}
	var sorted []string
	for id := range ids {
		sorted = append(sorted, id)
	}
	sort.Strings(sorted)
	var out []*Advisory
	for _, id := range sorted {
		if id == "" || strings.ContainsAny(id, "/?#% ") {
			return nil, fmt.Errorf("OSV API: querybatch named an advisory %q that is not an identifier", id)
		}
		var raw json.RawMessage
		if err := c.do(ctx, http.MethodGet, "/v1/vulns/"+url.PathEscape(id), nil, &raw); err != nil {
			return nil, err
		}
		a, err := ParseAdvisory(raw)
		if err != nil {
			return nil, fmt.Errorf("OSV API: record %s: %w", id, err)
		}
		if a.ID != id {
			return nil, fmt.Errorf("OSV API: asked for %s, got record %s", id, a.ID)
		}
		out = append(out, a)
	}
	return out, nil
}

func (c *Client) do(ctx context.Context, method, path string, body, into any) error {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	u := strings.TrimRight(c.BaseURL, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("OSV API: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("OSV API: %w", err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("OSV API %s %s: %w", method, path, err)
	}
	if len(data) > maxResponseBytes {
		return fmt.Errorf("OSV API %s %s: answer larger than %d bytes", method, path, maxResponseBytes)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("OSV API %s %s: %s", method, path, res.Status)
	}
	if raw, ok := into.(*json.RawMessage); ok {
		*raw = data
		return nil
	}
	if err := json.Unmarshal(data, into); err != nil {
		return fmt.Errorf("OSV API %s %s: answer is not the expected JSON: %v", method, path, err)
	}
	return nil
}
