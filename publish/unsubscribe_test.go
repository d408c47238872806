package publish

import (
	"bytes"
	"context"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOneClickUnsubscribe(t *testing.T) {
	s := newTestSite(t, testSource(t, nil))
	var mu sync.Mutex
	var calls []string
	fail := false
	h := s.Unsubscribe(func(_ context.Context, token string) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errors.New("database is locked")
		}
		calls = append(calls, token)
		return nil
	})
	const token = "abcdefghijklmnop2345"
	do := func(method, target, ctype, body string) (int, string) {
		t.Helper()
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if (rec.Code == 200 || rec.Code == 400) && !strings.Contains(rec.Header().Get("Content-Security-Policy"), "form-action 'self'") {
			t.Errorf("%s %s: CSP %q", method, target, rec.Header().Get("Content-Security-Policy"))
		}
		return rec.Code, rec.Body.String()
	}

	// GET never unsubscribes: it shows the button that POSTs.
	code, body := do(http.MethodGet, "/unsubscribe/"+token, "", "")
	if code != 200 || !strings.Contains(body, `<form method="post"`) || !strings.Contains(body, `name="List-Unsubscribe" value="One-Click"`) || len(calls) != 0 {
		t.Errorf("GET: %d %d calls\n%s", code, len(calls), body)
	}

	// The RFC 8058 POST, as mail clients send it.
	code, done := do(http.MethodPost, "/unsubscribe/"+token, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click")
	if code != 200 || !strings.Contains(done, "unsubscribed now") || len(calls) != 1 || calls[0] != token {
		t.Errorf("POST: %d %v\n%s", code, calls, done)
	}
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	mw.WriteField("List-Unsubscribe", "One-Click")
	mw.Close()
	if code, _ := do(http.MethodPost, "/unsubscribe/"+token, mw.FormDataContentType(), mp.String()); code != 200 || len(calls) != 2 {
		t.Errorf("multipart POST: %d %v", code, calls)
	}

	// Unknown and malformed tokens get the very same page; malformed ones
	// are not even looked up.
	for _, tok := range []string{"zzzzzzzzzzzzzzzzzzzz", "short", strings.Repeat("a", 200), "bad%27token%3Cx%3E"} {
		code, got := do(http.MethodPost, "/unsubscribe/"+tok, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click")
		if code != 200 || got != done {
			t.Errorf("token %q: %d, a different page:\n%s", tok, code, got)
		}
	}
	if len(calls) != 3 {
		t.Errorf("calls %v; want only the well-formed unknown token looked up", calls)
	}

	// A POST without the one-click field, other methods, other paths.
	if code, _ := do(http.MethodPost, "/unsubscribe/"+token, "application/x-www-form-urlencoded", "x=1"); code != 400 {
		t.Errorf("POST without List-Unsubscribe=One-Click: %d", code)
	}
	if code, _ := do(http.MethodPut, "/unsubscribe/"+token, "", ""); code != 405 {
		t.Errorf("PUT: %d", code)
	}
	if code, _ := do(http.MethodGet, "/unsubscribe/", "", ""); code != 404 {
		t.Errorf("no token: %d", code)
	}
	if code, _ := do(http.MethodPost, "/unsubscribe/"+token, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click&pad="+strings.Repeat("x", 20000)); code != 400 {
		t.Errorf("oversized body: %d", code)
	}
	if len(calls) != 3 {
		t.Errorf("calls %v after refused requests", calls)
	}

	fail = true
	if code, _ := do(http.MethodPost, "/unsubscribe/"+token, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click"); code != 503 {
		t.Errorf("failing store: %d", code)
	}
}

func TestWriteMbox(t *testing.T) {
	msgs := []MboxMessage{
		{From: "security@example.org", Date: time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC),
			Raw: []byte("From: a@example.org\r\nSubject: one\r\n\r\nFrom here on\r\n>From quoted\r\n>>From twice\r\nFromage\r\n")},
		{Date: time.Date(2026, 3, 6, 9, 8, 7, 0, time.UTC), Raw: []byte("Subject: two\n\nno final newline")},
	}
	var b bytes.Buffer
	if err := WriteMbox(&b, msgs); err != nil {
		t.Fatal(err)
	}
	want := "From security@example.org Thu Mar  5 10:00:00 2026\n" +
		"From: a@example.org\nSubject: one\n\n>From here on\n>>From quoted\n>>>From twice\nFromage\n\n" +
		"From MAILER-DAEMON Fri Mar  6 09:08:07 2026\n" +
		"Subject: two\n\nno final newline\n\n"
	if b.String() != want {
		t.Errorf("mbox:\n%q\nwant\n%q", b.String(), want)
	}
	// Undo the quoting as a reader does: the first message comes back.
	parts := strings.Split(b.String(), "\n\nFrom MAILER-DAEMON")
	first := strings.SplitN(parts[0], "\n", 2)[1]
	var lines []string
	for _, l := range strings.Split(first, "\n") {
		if strings.HasPrefix(strings.TrimLeft(l, ">"), "From ") {
			l = l[1:]
		}
		lines = append(lines, l)
	}
	m, err := mail.ReadMessage(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil || m.Header.Get("Subject") != "one" {
		t.Fatalf("read back: %v", err)
	}
	if got := strings.ReplaceAll(string(msgs[0].Raw), "\r\n", "\n"); !strings.HasSuffix(got, strings.Join(lines, "\n")+"\n") && strings.Join(lines, "\n")+"\n" != got {
		t.Errorf("unquoted %q, want %q", strings.Join(lines, "\n"), got)
	}
}
