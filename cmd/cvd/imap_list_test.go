package main

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestIMAPListOptions: LIST with no options, with selection options and
// with RETURN options, as a client sends them, each answered.
func TestIMAPListOptions(t *testing.T) {
	w := newIMAPWorld(t)
	w.list("2026-001")
	deb := w.person("Debian", "team@security.debian.example")
	w.join("2026-001", deb, "downstream")
	cora := w.person("Cora", "cora@example.org")
	w.join("2026-001", cora, "coordinator")
	w.post("2026-001", cora, "report", "the overflow")
	c := w.login(deb, w.password(deb), nil)

	plain, err := c.List("", "*", nil).Collect()
	if err != nil || len(plain) == 0 {
		t.Fatalf("LIST without options: %v, %v", plain, err)
	}
	if su, err := c.List("", "*", &imap.ListOptions{SelectSpecialUse: true}).Collect(); err != nil || len(su) != 0 {
		t.Errorf("LIST (SPECIAL-USE): %v, %v; want no mailbox (none has a special use)", su, err)
	}
	st, err := c.List("", "Incidents/*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true}, ReturnSubscribed: true}).Collect()
	if err != nil || len(st) != 1 || st[0].Mailbox != "Incidents/2026-001" || st[0].Status == nil || st[0].Status.NumMessages == nil || *st[0].Status.NumMessages != 1 {
		t.Errorf("LIST RETURN (STATUS (MESSAGES) SUBSCRIBED): %+v, %v", st, err)
	}
}
