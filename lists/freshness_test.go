package lists_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/store"
)

// TestStaleAndFutureCommandsRefused: a command counts only while its
// signature is fresh (lists.max_signature_age, 7 days by default) and not
// dated more than 15 minutes ahead of cvd's clock.
func TestStaleAndFutureCommandsRefused(t *testing.T) {
	w := newWorld(t)
	w.svc.CreateList(t.Context(), "2026-020", store.ListIncident, "")
	coord := w.person("Cora", "cora@example.org", "never")
	fixer := w.person("Finn", "finn@example.org", "never")
	w.join("2026-020", coord, "coordinator")
	w.join("2026-020", fixer, "fixer")

	// Signed now, arriving eight days later (held in a queue, or captured
	// and replayed): refused, and the member stays.
	inner := "Content-Type: text/plain; charset=utf-8\r\n\r\nx-list: 2026-020\r\nx-remove-member: finn@example.org\r\n"
	armored, _ := coord.Run([]byte(inner), "--armor", "--encrypt", "--sign", "--local-user", coord.Fpr, "--recipient", w.key.Fingerprint())
	w.advance(8 * 24 * time.Hour)
	w.send(coord.Email, "security+2026-020@example.org", pgpmimeFrom(coord.Name, coord.Email, "2026-020", "<stale@x.example>", armored))
	if r := w.lastTo(coord, "commands"); !strings.Contains(r, "refused: the signature is older than 7 days") {
		t.Errorf("stale command:\n%s", r)
	}

	// Dated an hour ahead of cvd's clock: refused.
	ahead := w.now().Add(time.Hour).UTC().Format("20060102T150405")
	armored, _ = coord.Run([]byte(inner), "--faked-system-time", ahead+"!", "--armor", "--encrypt", "--sign", "--local-user", coord.Fpr, "--recipient", w.key.Fingerprint())
	w.send(coord.Email, "security+2026-020@example.org", pgpmimeFrom(coord.Name, coord.Email, "2026-020", "<future@x.example>", armored))
	// (go-crypto already calls such a signature bad: the post is held
	// for the coordinators, and no command runs.)
	if ps := w.posts("2026-020"); len(ps) != 2 || ps[1].Status != lists.PostHeld {
		t.Errorf("future command: posts %+v", ps)
	}
	if r := w.lastTo(coord, "commands"); strings.Contains(r, "x-remove-member: ok") {
		t.Errorf("future command ran:\n%s", r)
	}

	// Five minutes ahead is a clock running fast: accepted.
	ahead = w.now().Add(5 * time.Minute).UTC().Format("20060102T150405")
	armored, _ = coord.Run([]byte(inner), "--faked-system-time", ahead+"!", "--armor", "--encrypt", "--sign", "--local-user", coord.Fpr, "--recipient", w.key.Fingerprint())
	w.send(coord.Email, "security+2026-020@example.org", pgpmimeFrom(coord.Name, coord.Email, "2026-020", "<skew@x.example>", armored))
	if r := w.lastTo(coord, "commands"); !strings.Contains(r, "x-remove-member: ok, removed finn@example.org") {
		t.Errorf("command within the clock skew:\n%s", r)
	}
}

func pgpmimeFrom(name, email, list, msgID, armored string) string {
	return fmt.Sprintf("From: %s <%s>\r\nTo: security+%s@example.org\r\nSubject: ...\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"XX\"\r\n\r\n"+
		"--XX\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n"+
		"--XX\r\nContent-Type: application/octet-stream\r\n\r\n%s\r\n--XX--\r\n", name, email, list, msgID, strings.ReplaceAll(armored, "\n", "\r\n"))
}
