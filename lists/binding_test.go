package lists_test

import (
	"strings"
	"testing"

	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/store"
)

// TestUnsignedCiphertextMovedToAnotherList: an encrypted post without a
// member's signature and without a list name (a reporter's typical
// message) captured on A and resent to B, where the attacker coordinates,
// is held; its content goes only to coordinators who are on every
// incident list (the team), never to B's own coordinator.
func TestUnsignedCiphertextMovedToAnotherList(t *testing.T) {
	w := newWorld(t)
	for _, l := range []string{"2026-030", "2026-031"} {
		w.svc.CreateList(t.Context(), l, store.ListIncident, "")
	}
	cora := w.person("Cora", "cora@example.org", "never")
	rita := w.person("Rita", "rita@reporter.example", "never")
	max := w.person("Max", "max@example.net", "never")
	w.join("2026-030", cora, "coordinator")
	w.join("2026-031", cora, "coordinator")
	w.join("2026-030", rita, "reporter")
	w.join("2026-031", max, "coordinator")

	armored, _ := rita.Run([]byte("Content-Type: text/plain\r\n\r\nSECRET-R: the exploit\r\n"), "--armor", "--encrypt", "--recipient", w.key.Fingerprint())
	raw := pgpmimeFrom(rita.Name, rita.Email, "2026-030", "<r1@reporter.example>", armored)
	w.send(rita.Email, "security+2026-030@example.org", raw)
	moved := pgpmimeFrom(max.Name, max.Email, "2026-031", "<mv@example.net>", armored)
	w.send(max.Email, "security+2026-031@example.org", moved)

	ps := w.posts("2026-031")
	if len(ps) != 1 || ps[0].Status != lists.PostHeld {
		t.Fatalf("posts on 2026-031: %+v", ps)
	}
	for _, m := range w.queue() {
		if m.rcpt != max.Email {
			continue
		}
		plain := string(m.raw)
		if strings.Contains(plain, "-----BEGIN PGP MESSAGE-----") {
			plain, _, _ = max.Decrypt(m.raw)
		}
		if strings.Contains(plain, "SECRET-R") {
			t.Errorf("B's coordinator reads A's content (%s):\n%s", m.kind, plain)
		}
	}
	if r := w.lastTo(max, "held"); !strings.Contains(r, "names no list") {
		t.Errorf("notice to B's coordinator:\n%s", r)
	}
	held := w.lastTo(cora, "post")
	if !strings.Contains(held, "SECRET-R") || !strings.Contains(held, "List:      2026-031") || !strings.Contains(held, "Held:      it is encrypted, not signed by a member") {
		t.Errorf("held copy to the team coordinator:\n%s", held)
	}
}
