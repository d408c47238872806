package main

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// mailboxView is what a member sees over IMAP: per mailbox, each
// message's UID and a digest of its bytes.
func (b *imapBin) mailboxView(u *gpgtest.User, password string) map[string][]string {
	b.t.Helper()
	c := b.login("127.0.0.1", u, password, nil)
	defer func() { c.Logout().Wait() }()
	ls, err := c.List("", "*", &imap.ListOptions{}).Collect()
	if err != nil {
		b.t.Fatalf("list mailboxes of %s: %v", u.Email, err)
	}
	view := map[string][]string{}
	for _, l := range ls {
		if slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) {
			continue
		}
		sel, err := c.Select(l.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			b.t.Fatalf("select %s: %v", l.Mailbox, err)
		}
		if sel.NumMessages == 0 {
			view[l.Mailbox] = nil
			continue
		}
		ms, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: sel.NumMessages}}, &imap.FetchOptions{UID: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil {
			b.t.Fatalf("fetch %s: %v", l.Mailbox, err)
		}
		for _, m := range ms {
			body := m.FindBodySection(&imap.FetchItemBodySection{Peek: true})
			if len(body) == 0 {
				b.t.Errorf("%s: %s UID %d has no body", u.Email, l.Mailbox, m.UID)
			}
			view[l.Mailbox] = append(view[l.Mailbox], fmt.Sprintf("%d %x", m.UID, sha256.Sum256(body)))
		}
	}
	return view
}

var purgedRE = regexp.MustCompile(`purge (\d+) spooled messages \(\d+ bytes\) older than 30d and (\d+) delivered bodies`)

// TestRetentionKeepsArchivesAndOpenIncidents: an incident released and
// closed, another still open, an announcement to four subscribers, and
// members reading all of it over IMAP. Forty days later the server's
// hourly retention pass (run at start, on cvd's clock) empties the raw
// spooled mail and the subscribers' delivered copies; every IMAP mailbox
// and the public archive are what they were, byte for byte and UID for
// UID, and the open incident has lost nothing.
func TestRetentionKeepsArchivesAndOpenIncidents(t *testing.T) {
	b := startIMAPBin(t)
	cli := func(env []string, args ...string) string {
		t.Helper()
		code, out, errOut := runCVD(t, b.dir, env, append(args, "--config", b.cfg)...)
		if code != 0 {
			t.Fatalf("cvd %v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out
	}
	cora := b.person("Cora Coordinator", "cora@example.org")
	sam := b.person("Sam Subscriber", "sam@users.example")
	b.s.stop(t)
	addTeam(t, b.dir, b.cfg, cora)
	b.s = startCVD(t, t.TempDir(), nil, "--config", b.cfg)
	b.join("announce", sam, "subscriber")
	for i := range 3 {
		cli(nil, "member", "add", "announce", fmt.Sprintf("sub%d@users.example", i), "--role", "subscriber")
	}
	closed := report(t, b.s, b.dir, "rita@reporter.example", "parser crash", 1)
	open := report(t, b.s, b.dir, "otto@reporter.example", "quiet overflow", 1)
	b.post(closed, cora, "x-list: "+closed+"\r\nConfirmed; the fix is 1.2.3.")
	b.post(open, cora, "x-list: "+open+"\r\nLooking into it.")
	cli(nil, "incident", "confirm", closed, "--privacy", "public")
	cli(nil, "incident", "set", closed, "title", "Parser crash on empty input")
	cli(nil, "incident", "set", closed, "description", "An empty input file crashes the parser.")
	cli(nil, "incident", "versions", closed, "libexample", "--introduced", "1.0", "--fixed", "1.2.3")
	cli(nil, "incident", "publish", closed)
	cli(nil, "incident", "close", closed)
	dbFile := filepath.Join(b.dir, "cvd.db")
	waitMail(t, b.dir, "sub2@users.example", 1)
	waitRouted(t, dbFile, b.s.logs)

	pw := map[string]string{cora.Email: b.password(cora), sam.Email: b.password(sam)}
	waitRouted(t, dbFile, b.s.logs)
	before := map[string]map[string][]string{cora.Email: b.mailboxView(cora, pw[cora.Email]), sam.Email: b.mailboxView(sam, pw[sam.Email])}
	if len(before[cora.Email]["Incidents/"+closed]) < 1 || len(before[cora.Email]["Incidents/"+open]) < 1 || len(before[cora.Email]["INBOX"]) < 1 || len(before[sam.Email]["Announce"]) != 1 {
		t.Fatalf("IMAP before the purge: %v", before)
	}
	mbox := cli(nil, "incident", "export", closed, "--format", "mbox")
	db := openRO(t, dbFile)
	defer db.Close()
	openSpool := `SELECT s.id, s.raw FROM spool s WHERE s.id IN (SELECT spool_id FROM incident WHERE id = ?1)
		OR s.id IN (SELECT p.spool_id FROM post p JOIN list l ON l.id = p.list_id WHERE l.name = ?1) ORDER BY s.id`
	openQueue := `SELECT m.id, m.raw, (SELECT group_concat(hex(p.data), '' ORDER BY p.id) FROM shared_body_part p WHERE p.body_id = m.body_id)
		FROM queue_msg m WHERE m.ref = ? ORDER BY m.id`
	openBefore := append(rows(t, db, openSpool, open), rows(t, db, openQueue, open)...)
	if len(openBefore) < 4 {
		t.Fatalf("the open incident has too little to check: %v", openBefore)
	}

	// A dry run forty days later counts and changes nothing.
	later := []string{"CVD_CLOCK_OFFSET=960h"}
	out := cli(later, "retention", "run", "--dry-run")
	m := purgedRE.FindStringSubmatch(out)
	if m == nil || m[1] == "0" || m[2] == "0" {
		t.Fatalf("retention dry run:\n%s", out)
	}
	var purged int
	db.QueryRow(`SELECT (SELECT COUNT(*) FROM spool WHERE purged_at != 0) + (SELECT COUNT(*) FROM queue_msg WHERE purged_at != 0)`).Scan(&purged)
	if purged != 0 {
		t.Fatalf("the dry run purged %d rows", purged)
	}

	// The server, forty days later, purges at start.
	b.s.stop(t)
	b.s = startCVD(t, t.TempDir(), later, "--config", b.cfg)
	waitFor(t, "the retention pass", func() bool { return strings.Contains(b.s.logs(), "retention: purged") }, b.s.logs)
	waitRouted(t, dbFile, b.s.logs)
	var spoolPurged, bodiesPurged int
	db.QueryRow(`SELECT COUNT(*) FROM spool WHERE purged_at != 0 AND length(raw) = 0`).Scan(&spoolPurged)
	db.QueryRow(`SELECT COUNT(*) FROM queue_msg WHERE purged_at != 0 AND length(raw) = 0`).Scan(&bodiesPurged)
	if fmt.Sprint(spoolPurged) != m[1] || fmt.Sprint(bodiesPurged) != m[2] {
		t.Errorf("purged %d spooled messages and %d bodies; the dry run said %s and %s", spoolPurged, bodiesPurged, m[1], m[2])
	}
	// What went: the closed incident's report as received, and the
	// subscribers' copies of the announcement.
	var reportPurged, copiesPurged int
	db.QueryRow(`SELECT COUNT(*) FROM spool s JOIN incident i ON i.spool_id = s.id WHERE i.id = ? AND s.purged_at != 0`, closed).Scan(&reportPurged)
	db.QueryRow(`SELECT COUNT(*) FROM queue_msg m JOIN queue q ON q.msg_id = m.id WHERE m.kind = 'announce' AND q.rcpt LIKE '%@users.example' AND m.purged_at != 0`).Scan(&copiesPurged)
	if reportPurged != 1 || copiesPurged != 4 {
		t.Errorf("closed incident's report purged: %d, subscribers' copies purged: %d of 4", reportPurged, copiesPurged)
	}
	if spool := cli(nil, "spool", "list", "--limit", "1000"); strings.Count(spool, ", purged ") != spoolPurged {
		t.Errorf("spool list marks %d messages purged, %d were:\n%s", strings.Count(spool, ", purged "), spoolPurged, spool)
	}

	// Nothing of the open incident went.
	openAfter := append(rows(t, db, openSpool, open), rows(t, db, openQueue, open)...)
	for i, r := range openBefore {
		if i >= len(openAfter) || openAfter[i] != r {
			t.Errorf("open incident %s changed by the purge:\nbefore %v\nafter  %v", open, openBefore, openAfter)
			break
		}
	}
	// Every mailbox holds what it held, with the same UIDs (the
	// escalation notices of the open incident may come on top).
	for _, u := range []*gpgtest.User{cora, sam} {
		after := b.mailboxView(u, pw[u.Email])
		var boxes []string
		for box := range before[u.Email] {
			boxes = append(boxes, box)
		}
		sort.Strings(boxes)
		for _, box := range boxes {
			was, is := before[u.Email][box], after[box]
			if len(is) < len(was) || strings.Join(is[:len(was)], "\n") != strings.Join(was, "\n") {
				t.Errorf("%s's %s after the purge:\n%v\nbefore:\n%v", u.Email, box, is, was)
			}
		}
	}
	if got := cli(nil, "incident", "export", closed, "--format", "mbox"); got != mbox {
		t.Errorf("the public archive changed:\n%s\nbefore:\n%s", got, mbox)
	}
	// A second pass finds nothing more.
	if out := cli(later, "retention", "run"); !strings.Contains(out, "purged 0 spooled messages") || !strings.Contains(out, "and 0 delivered bodies") {
		t.Errorf("second retention run:\n%s", out)
	}
	cvdtest.MustRun(t, b.dir, nil, "queue", "list", "--all", "--config", b.cfg)
}
