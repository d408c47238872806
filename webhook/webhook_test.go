package webhook

import (
	"strconv"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	body := []byte(`{"type":"advisory.released","id":"example.org:2026-001:released"}`)
	now := time.Unix(1_800_000_000, 0)
	ts := now.Unix()
	sig := Sign(secret, ts, body)
	if err := Verify(secret, strconv.FormatInt(ts, 10), sig, body, now.Add(time.Minute), 0); err != nil {
		t.Fatalf("good request: %v", err)
	}
	for name, tc := range map[string]struct {
		secret  []byte
		ts, sig string
		body    []byte
		at      time.Time
	}{
		"other secret":     {[]byte("another secret of thirty-two chars"), strconv.FormatInt(ts, 10), sig, body, now},
		"changed body":     {secret, strconv.FormatInt(ts, 10), sig, []byte(`{"type":"advisory.released","id":"x"}`), now},
		"moved timestamp":  {secret, strconv.FormatInt(ts+1, 10), sig, body, now},
		"replayed later":   {secret, strconv.FormatInt(ts, 10), sig, body, now.Add(DefaultWindow + time.Second)},
		"from the future":  {secret, strconv.FormatInt(ts, 10), sig, body, now.Add(-DefaultWindow - time.Second)},
		"no timestamp":     {secret, "", sig, body, now},
		"no signature":     {secret, strconv.FormatInt(ts, 10), "", body, now},
		"other hash named": {secret, strconv.FormatInt(ts, 10), "sha1=" + sig[7:], body, now},
	} {
		if err := Verify(tc.secret, tc.ts, tc.sig, tc.body, tc.at, 0); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}
