// Package spam scores incoming mail with rspamd, the spam filter mail
// administrators already run, through its /checkv2 HTTP API. It knows
// nothing of incidents: the intake policy decides what a score means.
package spam

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Envelope is what rspamd is told about a message besides its content.
type Envelope struct {
	// IP is the SMTP client's address (host or host:port).
	IP       string
	Helo     string
	MailFrom string
	Rcpts    []string
}

// Result is rspamd's verdict on one message.
type Result struct {
	Score         float64
	RequiredScore float64
	// Action is rspamd's action: "no action", "greylist", "add header",
	// "rewrite subject", "soft reject" or "reject".
	Action string
	// Symbols are the names of the rules that matched.
	Symbols []string
}

// Rspamd is a client for one rspamd normal (or proxy) worker.
type Rspamd struct {
	// URL is the worker's base URL, e.g. "http://127.0.0.1:11333".
	URL string
	// Password, when set, is sent as the Password header.
	Password string
	// Client is the HTTP client (default: one with a 10 s timeout).
	Client *http.Client
}

// Check scores raw with rspamd's /checkv2.
func (r *Rspamd) Check(ctx context.Context, raw []byte, env Envelope) (*Result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(r.URL, "/")+"/checkv2", bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("rspamd: %w", err)
	}
	if ip := hostOf(env.IP); ip != "" {
		req.Header.Set("IP", ip)
	}
	if env.Helo != "" {
		req.Header.Set("Helo", env.Helo)
	}
	if env.MailFrom != "" {
		req.Header.Set("From", env.MailFrom)
	}
	for _, rc := range env.Rcpts {
		req.Header.Add("Rcpt", rc)
	}
	if r.Password != "" {
		req.Header.Set("Password", r.Password)
	}
	cl := r.Client
	if cl == nil {
		cl = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, fmt.Errorf("rspamd %s: %w", r.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("rspamd %s: read reply: %w", r.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("rspamd %s: %s: %.200s", r.URL, resp.Status, body)
	}
	var v struct {
		Score         *float64                   `json:"score"`
		RequiredScore float64                    `json:"required_score"`
		Action        string                     `json:"action"`
		Symbols       map[string]json.RawMessage `json:"symbols"`
		Error         string                     `json:"error"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("rspamd %s: unreadable reply: %w", r.URL, err)
	}
	if v.Error != "" {
		return nil, fmt.Errorf("rspamd %s: %s", r.URL, v.Error)
	}
	if v.Score == nil || v.Action == "" {
		return nil, fmt.Errorf("rspamd %s: reply without score or action", r.URL)
	}
	res := &Result{Score: *v.Score, RequiredScore: v.RequiredScore, Action: v.Action}
	for s := range v.Symbols {
		res.Symbols = append(res.Symbols, s)
	}
	return res, nil
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
