package deps

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serveAPI runs handler as an OSV API on a loopback port.
func serveAPI(t *testing.T, handler http.Handler) *Client {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &Client{BaseURL: "http://" + ln.Addr().String()}
}

// TestAPIPagesAndRecords: querybatch with a next page, then each record
// fetched once and matched locally.
func TestAPIPagesAndRecords(t *testing.T) {
	rack, _ := os.ReadFile(filepath.Join("testdata", "advisories", "GHSA-54rr-7fvw-6x8f.json"))
	puma, _ := os.ReadFile(filepath.Join("testdata", "advisories", "GHSA-c2f4-cvqm-65w2.json"))
	fetched := map[string]int{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/querybatch", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Queries []batchQuery `json:"queries"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		var out []map[string]any
		for _, q := range req.Queries {
			switch {
			case q.Package.Name == "rack" && q.PageToken == "":
				out = append(out, map[string]any{"vulns": []any{map[string]any{"id": "GHSA-54rr-7fvw-6x8f"}}, "next_page_token": "p2"})
			case q.Package.Name == "rack":
				out = append(out, map[string]any{"vulns": []any{map[string]any{"id": "GHSA-c2f4-cvqm-65w2"}}})
			default:
				out = append(out, map[string]any{})
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"results": out})
	})
	mux.HandleFunc("GET /v1/vulns/{id}", func(w http.ResponseWriter, r *http.Request) {
		fetched[r.PathValue("id")]++
		switch r.PathValue("id") {
		case "GHSA-54rr-7fvw-6x8f":
			w.Write(rack)
		case "GHSA-c2f4-cvqm-65w2":
			w.Write(puma)
		}
	})
	c := serveAPI(t, mux)
	comps := []Component{{Ecosystem: "RubyGems", Name: "rack", Version: "2.1.2"}, {Ecosystem: "npm", Name: "express", Version: "4.19.2"}}
	advs, err := c.Advisories(context.Background(), comps)
	if err != nil || len(advs) != 2 || fetched["GHSA-54rr-7fvw-6x8f"] != 1 || fetched["GHSA-c2f4-cvqm-65w2"] != 1 {
		t.Fatalf("%d advisories, fetched %v, %v", len(advs), fetched, err)
	}
	if got := found(MatchAll(comps, advs)); len(got) != 1 || got[0] != "GHSA-54rr-7fvw-6x8f rack@2.1.2" {
		t.Errorf("matches %q", got)
	}
}

// TestAPIRefusals: a failing or lying API is an error naming what went
// wrong, never a crash and never a partial result.
func TestAPIRefusals(t *testing.T) {
	comps := []Component{{Ecosystem: "RubyGems", Name: "rack", Version: "2.1.2"}}
	for _, tc := range []struct {
		name       string
		batch, rec string
		status     int
		want       string
	}{
		{"server error", "", "", 500, "500"},
		{"not JSON", "<html>", "", 200, "not the expected JSON"},
		{"too few results", `{"results": []}`, "", 200, "0 results for 1 queries"},
		{"bad ID", `{"results": [{"vulns": [{"id": "../../etc/passwd"}]}]}`, "", 200, "not an identifier"},
		{"malformed record", `{"results": [{"vulns": [{"id": "GHSA-1"}]}]}`, `{"id": "GHSA-1", "affected": [`, 200, "record GHSA-1: not JSON"},
		{"other record", `{"results": [{"vulns": [{"id": "GHSA-1"}]}]}`, `{"id": "GHSA-2"}`, 200, "asked for GHSA-1, got record GHSA-2"},
	} {
		mux := http.NewServeMux()
		mux.HandleFunc("/v1/querybatch", func(w http.ResponseWriter, r *http.Request) {
			if tc.status != 200 {
				http.Error(w, "down", tc.status)
				return
			}
			w.Write([]byte(tc.batch))
		})
		mux.HandleFunc("/v1/vulns/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(tc.rec)) })
		_, err := serveAPI(t, mux).Advisories(context.Background(), comps)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
