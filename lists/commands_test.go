package lists_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cvd-project/cvd/internal/gpgtest"
	"github.com/cvd-project/cvd/store"
)

// post sends a PGP/MIME post signed and encrypted by u with a fresh
// Message-ID and returns the raw message (for replaying it).
func (w *world) post(u *gpgtest.User, list, body string, n int) string {
	w.t.Helper()
	inner := "Content-Type: text/plain; charset=utf-8\r\n\r\n" + strings.ReplaceAll(body, "\n", "\r\n")
	raw := gpgtest.PGPMIME(fmt.Sprintf("From: %s <%s>\r\nTo: security+%s@example.org\r\nSubject: ...\r\nMessage-ID: <cmd%d@x.example>\r\n", u.Name, u.Email, list, n),
		u.EncryptSign([]byte(inner), w.key.Fingerprint()))
	w.send(u.Email, "security+"+list+"@example.org", raw)
	return raw
}

// lastTo decrypts the newest queued message of kind to u.
func (w *world) lastTo(u *gpgtest.User, kind string) string {
	w.t.Helper()
	q := w.queue()
	for i := len(q) - 1; i >= 0; i-- {
		if q[i].rcpt == u.Email && q[i].kind == kind {
			plain, status, err := u.Decrypt(q[i].raw)
			if err != nil || !gpgtest.HasStatus(status, "GOODSIG") {
				w.t.Fatalf("%s cannot read their %s: %v\n%s", u.Email, kind, err, status)
			}
			return plain
		}
	}
	w.t.Fatalf("no %s for %s", kind, u.Email)
	return ""
}

func TestEmailCommands(t *testing.T) {
	w := newWorld(t)
	w.svc.CreateList(t.Context(), "2026-010", store.ListIncident, "")
	coord := w.person("Cora", "cora@example.org", "never")
	fixer := w.person("Finn", "finn@example.org", "never")
	newbie := w.person("Nina Newcomer", "nina@distro.example", "never")
	upstream := w.person("Uma Upstream", "uma@upstream.example", "never")
	w.join("2026-010", coord, "coordinator")
	w.join("2026-010", fixer, "fixer")

	// An ordinary post first, for the backlog later.
	w.post(fixer, "2026-010", "EARLY-FINDING: the parser trusts the length field\n", 1)

	// The coordinator adds a member, attaching her key, and says something.
	w.post(coord, "2026-010", "x-list: 2026-010\nx-add-member: nina@distro.example downstream\n\nWelcome Nina, see below.\n"+string(newbie.Pub), 2)
	reply := w.lastTo(coord, "commands")
	if !strings.Contains(reply, "x-add-member: ok, added nina@distro.example as downstream") || !strings.Contains(reply, "sent to the list") {
		t.Errorf("reply:\n%s", reply)
	}
	copyForFixer := w.lastTo(fixer, "post")
	if strings.Contains(copyForFixer, "x-add-member") || !strings.Contains(copyForFixer, "Welcome Nina") {
		t.Errorf("keywords not stripped from the distributed post:\n%s", copyForFixer)
	}

	// Replaying the same signed message (new Message-ID) is refused.
	raw := w.post(coord, "2026-010", "x-list: 2026-010\nx-remove-member: finn@example.org\n", 3)
	if r := w.lastTo(coord, "commands"); !strings.Contains(r, "x-remove-member: ok, removed finn@example.org") {
		t.Fatalf("remove: %s", r)
	}
	w.join("2026-010", fixer, "fixer") // back again
	w.send(coord.Email, "security+2026-010@example.org", strings.Replace(raw, "<cmd3@", "<cmd3-replay@", 1))
	if r := w.lastTo(coord, "commands"); !strings.Contains(r, "refused: this signed message was used before") {
		t.Errorf("replay not refused:\n%s", r)
	}

	// A command for another incident is held, not run; the sender is told why.
	w.post(coord, "2026-010", "x-list: 2026-999\nx-remove-member: finn@example.org\n", 4)
	if r := w.lastTo(coord, "held"); !strings.Contains(r, "its signed part names list 2026-999, not this one") {
		t.Errorf("other list's command:\n%s", r)
	}

	// Members may list members; only coordinators change them.
	w.post(fixer, "2026-010", "x-list: 2026-010\nx-list-members\nx-remove-member: cora@example.org\n", 5)
	r := w.lastTo(fixer, "commands")
	if !strings.Contains(r, "nina@distro.example downstream active "+newbie.Fpr) || !strings.Contains(r, "x-remove-member: refused: only a coordinator may do this") {
		t.Errorf("fixer's commands:\n%s", r)
	}

	// Backlog: Nina gets the posts from before she joined, including the
	// one that added her (it went to the members of that moment).
	w.post(coord, "2026-010", "x-list: 2026-010\nx-send-backlog: nina@distro.example\n", 6)
	if r := w.lastTo(coord, "commands"); !strings.Contains(r, "ok, sent 2 earlier posts to nina@distro.example") {
		t.Errorf("backlog: %s", r)
	}
	var backlog []string
	for _, m := range w.queue() {
		if m.rcpt == newbie.Email && m.kind == "post" {
			plain, status, err := newbie.Decrypt(m.raw)
			if err != nil || !gpgtest.HasStatus(status, "GOODSIG") {
				t.Fatalf("backlog copy: %v %s", err, status)
			}
			backlog = append(backlog, plain)
		}
	}
	if len(backlog) != 2 || !strings.Contains(backlog[0], "EARLY-FINDING") || !strings.Contains(backlog[1], "Welcome Nina") {
		t.Errorf("backlog copies: %q", backlog)
	}
	// Asking again sends nothing twice.
	w.post(coord, "2026-010", "x-list: 2026-010\nx-send-backlog: nina@distro.example\nx-list-members\n", 61)
	if r := w.lastTo(coord, "commands"); !strings.Contains(r, "ok, sent 0 earlier posts") {
		t.Errorf("second backlog: %s", r)
	}

	// Resend to a non-member: refused without a key, sent encrypted with one.
	w.post(coord, "2026-010", "x-list: 2026-010\nx-resend: uma@upstream.example\n\nUma, this is the report.\n", 7)
	if r := w.lastTo(coord, "commands"); !strings.Contains(r, "refused: no key is known for uma@upstream.example") {
		t.Errorf("resend without key: %s", r)
	}
	w.post(coord, "2026-010", "x-list: 2026-010\nx-resend: uma@upstream.example\n\nUma, this is the report.\n"+string(upstream.Pub), 8)
	if r := w.lastTo(coord, "commands"); !strings.Contains(r, "x-resend: ok, sent encrypted to uma@upstream.example") {
		t.Errorf("resend: %s", r)
	}
	if got := w.lastTo(upstream, "resend"); !strings.Contains(got, "Uma, this is the report.") {
		t.Errorf("resent copy:\n%s", got)
	}
	for _, m := range w.queue() {
		if m.rcpt == upstream.Email {
			if _, _, err := fixer.Decrypt(m.raw); err == nil {
				t.Error("another member can read the resent copy")
			}
		}
	}
}
