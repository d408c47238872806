package main

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzIMAPSession feeds arbitrary commands, after a real login, to the
// IMAP server backed by a real SQLite store holding one incident with a
// post: the server must never crash, and it must still serve a normal
// session afterwards.
func FuzzIMAPSession(f *testing.F) {
	for _, seed := range []string{
		"a SELECT \"Incidents/2026-001\"\r\nb FETCH 1:* (FLAGS BODY.PEEK[] BODYSTRUCTURE ENVELOPE INTERNALDATE RFC822.SIZE)\r\n",
		"a EXAMINE INBOX\r\nb UID SEARCH ALL\r\nc UID FETCH 1:* (UID FLAGS)\r\n",
		"a SELECT \"Incidents/2026-001\"\r\nb STORE 1 +FLAGS (\\Seen \\Deleted)\r\nc EXPUNGE\r\nd CLOSE\r\n",
		"a LIST \"\" \"*\"\r\nb LSUB \"\" \"*\"\r\nc STATUS \"Announce\" (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)\r\n",
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

	session := func(t *testing.T, input []byte) string {
		c, err := net.DialTimeout("tcp", w.addr, 3*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
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
		session(t, input)
		// The server still works for an ordinary client.
		out := session(t, []byte("s SELECT \"Incidents/2026-001\"\r\n"))
		if !strings.Contains(out, "L OK") || !strings.Contains(out, "s OK") {
			t.Fatalf("server unusable after %q:\n%s", input, out)
		}
	})
}
