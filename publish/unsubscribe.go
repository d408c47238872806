package publish

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
)

// UnsubscribeFunc ends the subscription that a one-click token stands for.
// It must do nothing for an unknown token, and its error is only for a
// failure to record the request: the page never tells whether the token
// was known.
type UnsubscribeFunc func(ctx context.Context, token string) error

// unsubscribeTokenRE bounds what is looked up: anything else gets the
// same page without a lookup.
var unsubscribeTokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{8,128}$`)

// Unsubscribe returns the RFC 8058 one-click unsubscribe handler for
// /unsubscribe/TOKEN (the List-Unsubscribe URL of the announce list). A
// POST whose form carries List-Unsubscribe=One-Click, as mail clients
// send it, unsubscribes; a GET only shows a page whose button sends that
// POST, so link scanners that follow URLs unsubscribe nobody. Known,
// unknown and malformed tokens get the same page.
func (s *Site) Unsubscribe(fn UnsubscribeFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.URL.Path, "/unsubscribe/")
		if !ok || token == "" || strings.Contains(token, "/") {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			s.unsubscribePage(w, r, http.StatusOK, "ask")
		case http.MethodPost:
			r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
			err := r.ParseMultipartForm(8 << 10)
			if err != nil && !errors.Is(err, http.ErrNotMultipart) || r.PostFormValue("List-Unsubscribe") != "One-Click" {
				s.unsubscribePage(w, r, http.StatusBadRequest, "bad")
				return
			}
			if unsubscribeTokenRE.MatchString(token) {
				if err := fn(r.Context(), token); err != nil {
					http.Error(w, "temporarily unavailable; please try again later", http.StatusServiceUnavailable)
					return
				}
			}
			s.unsubscribePage(w, r, http.StatusOK, "done")
		default:
			h.Set("Allow", "GET, HEAD, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

func (s *Site) unsubscribePage(w http.ResponseWriter, r *http.Request, status int, state string) {
	p := s.cfg.Project
	d := map[string]any{
		"Title": "Unsubscribe · " + p.Name, "Root": "../", "State": state,
		"Site":        siteInfo{Project: p, Security: "security@" + p.Domain},
		"Unsubscribe": "announce+unsubscribe@" + p.Domain,
	}
	var b bytes.Buffer
	if err := s.tmpl["unsubscribe"].ExecuteTemplate(&b, "layout", d); err != nil {
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(b.Bytes())
	}
}
