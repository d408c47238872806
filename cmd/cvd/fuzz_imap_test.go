package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// FuzzIMAPSession feeds arbitrary commands, after a real login, to the
// IMAP server backed by a real SQLite store holding one incident with a
// post: the server must never crash, it must still serve a normal session
// afterwards, and every archive must read as before, for the fuzzed member
// and for another one.
func FuzzIMAPSession(f *testing.F) {
	for _, seed := range []string{
		"a SELECT \"Incidents/2026-001\"\r\nb FETCH 1:* (FLAGS BODY.PEEK[] BODYSTRUCTURE ENVELOPE INTERNALDATE RFC822.SIZE)\r\n",
		"a EXAMINE INBOX\r\nb UID SEARCH ALL\r\nc UID FETCH 1:* (UID FLAGS)\r\n",
		"a SELECT \"Incidents/2026-001\"\r\nb STORE 1 +FLAGS (\\Seen \\Deleted)\r\nc EXPUNGE\r\nd CLOSE\r\n",
		"a LIST \"\" \"*\"\r\nb LSUB \"\" \"*\"\r\nc STATUS \"Announce\" (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)\r\n",
		"a LIST (SPECIAL-USE) \"\" \"*\"\r\nb LIST () \"\" \"\"\r\nc LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"*\" RETURN (CHILDREN)\r\n",
		"a LIST \"\" (\"*\" \"Incidents/%\") RETURN (STATUS (MESSAGES UNSEEN SIZE) SUBSCRIBED SPECIAL-USE)\r\nb LIST \"\" \"*\" RETURN ()\r\n",
		"a APPEND \"Incidents/2026-001\" {5}\r\nhello\r\nb COPY 1 Announce\r\n",
		"a SELECT \"Incidents/2026-999\"\r\nb SELECT \"../Incidents/2026-001\"\r\nc CREATE x\r\nd RENAME INBOX y\r\n",
		"a IDLE\r\nDONE\r\nb NOOP\r\n",
		"a SELECT INBOX\r\nb FETCH * BODY[HEADER.FIELDS (SUBJECT)]<0.10>\r\nc SEARCH TEXT \"x\" OR FROM a SUBJECT b\r\n",
		"a SELECT \"Incidents/2026-001\"\r\nb FETCH 4294967295:1 (BODY[1.2.3.MIME])\r\n",
		"\x00\xff{99999999}\r\n",
	} {
		f.Add([]byte(seed))
	}
	w := newIMAPWorld(f)
	w.list("2026-001")
	deb := w.person("Debian", "team@security.debian.example")
	w.join("2026-001", deb, "downstream")
	cora := w.person("Cora", "cora@example.org")
	w.join("2026-001", cora, "coordinator")
	w.post("2026-001", cora, "report", "the overflow")
	pw := w.password(deb)
	coraPW := w.password(cora)
	before := map[string]string{deb.Email: archiveView(f, w.addr, deb.Email, pw), cora.Email: archiveView(f, w.addr, cora.Email, coraPW)}
	if !strings.Contains(before[deb.Email], "Incidents/2026-001: uid") {
		f.Fatalf("the archive holds no post to compare with:\n%s", before[deb.Email])
	}

	// session runs input after a login and returns what the server said
	// within timeout (short for the fuzzed input, which may leave the
	// server waiting for more; long for the ordinary check, as a login
	// costs an argon2 hash, slow under the race detector).
	session := func(t *testing.T, input []byte, timeout time.Duration) string {
		c, err := net.DialTimeout("tcp", w.addr, timeout)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		done := make(chan string, 1)
		go func() {
			b, _ := io.ReadAll(c)
			done <- string(b)
		}()
		io.WriteString(c, "L LOGIN "+deb.Email+" "+pw+"\r\n")
		c.Write(input)
		io.WriteString(c, "\r\nDONE\r\nZ LOGOUT\r\n")
		return <-done
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		session(t, input, 3*time.Second)
		// The server still works for an ordinary client.
		out := session(t, []byte("s SELECT \"Incidents/2026-001\"\r\n"), 30*time.Second)
		if !strings.Contains(out, "L OK") || !strings.Contains(out, "s OK") {
			t.Fatalf("server unusable after %q:\n%s", input, out)
		}
		for user, pass := range map[string]string{deb.Email: pw, cora.Email: coraPW} {
			if got := archiveView(t, w.addr, user, pass); got != before[user] {
				t.Fatalf("the archive as %s reads it changed after %q:\nbefore:\n%s\nafter:\n%s", user, input, before[user], got)
			}
		}
	})
}

// archiveView is what user reads in every mailbox: names, UIDVALIDITY,
// and each message's UID, size and a digest of its bytes (flags are the
// member's own and may change).
func archiveView(t testing.TB, addr, user, password string) string {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	ls, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	var b strings.Builder
	sort.Slice(ls, func(i, j int) bool { return ls[i].Mailbox < ls[j].Mailbox })
	for _, l := range ls {
		fmt.Fprintf(&b, "%s %v\n", l.Mailbox, l.Attrs)
		if slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) {
			continue
		}
		sel, err := c.Select(l.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatalf("EXAMINE %s: %v", l.Mailbox, err)
		}
		fmt.Fprintf(&b, "%s: %d messages, uidvalidity %d, uidnext %d\n", l.Mailbox, sel.NumMessages, sel.UIDValidity, sel.UIDNext)
		if sel.NumMessages == 0 {
			continue
		}
		msgs, err := c.Fetch(imap.SeqSetNum(1, sel.NumMessages), &imap.FetchOptions{UID: true, RFC822Size: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil {
			t.Fatalf("FETCH in %s: %v", l.Mailbox, err)
		}
		for _, m := range msgs {
			var body []byte
			if len(m.BodySection) > 0 {
				body = m.BodySection[0].Bytes
			}
			fmt.Fprintf(&b, "%s: uid %d, %d bytes, sha256 %x\n", l.Mailbox, m.UID, m.RFC822Size, sha256.Sum256(body))
		}
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatalf("LOGOUT: %v", err)
	}
	return b.String()
}
