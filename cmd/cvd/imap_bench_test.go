package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/cvd-project/cvd/accounts"
	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/store"
)

// benchAnnouncements is the size of the announce archive synced.
const benchAnnouncements = 10000

// announcements returns n signed announcements (one signature, distinct
// Message-IDs and dates), CRLF line endings.
func announcements(b testing.TB, key *crypto.Key, n int) [][]byte {
	var inner bytes.Buffer
	inner.WriteString("Subject: [SECURITY] heap overflow in parse_header (CVE-2026-0001)\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	for i := 0; i < 30; i++ {
		inner.WriteString("A heap overflow in parse_header() lets a remote attacker crash the server; upgrade to 1.2.3.\r\n")
	}
	var outer textproto.Header
	outer.Set("From", "example.org security team <security@example.org>")
	outer.Set("To", "announce@example.org")
	outer.Set("List-Id", "<announce.example.org>")
	signed, err := crypto.SignClear(inner.Bytes(), outer, key, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	out := make([][]byte, n)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range out {
		var m bytes.Buffer
		fmt.Fprintf(&m, "Message-Id: <announce-%d@example.org>\r\nDate: %s\r\n", i, start.Add(time.Duration(i)*time.Hour).Format(time.RFC1123Z))
		m.Write(signed)
		out[i] = m.Bytes()
	}
	return out
}

// mbsyncPlain syncs one mailbox of an account over cleartext IMAP on
// loopback into a new Maildir and returns how many messages arrived.
func mbsyncPlain(b testing.TB, addr, user, password, mailbox string) int {
	dir := b.TempDir()
	host, port, _ := net.SplitHostPort(addr)
	// FSync off: the client's disk is not what is measured.
	rc := fmt.Sprintf("FSync no\n\nIMAPAccount t\nHost %s\nPort %s\nUser %s\nPass %s\nSSLType None\nAuthMechs LOGIN\n\n"+
		"IMAPStore t-remote\nAccount t\n\nMaildirStore t-local\nPath %s/mail/\nInbox %s/mail/INBOX\nSubFolders Verbatim\n\n"+
		"Channel t\nFar :t-remote:\nNear :t-local:\nPatterns %s\nCreate Near\nSync Pull\nExpunge None\nSyncState *\n",
		host, port, user, password, dir, dir, mailbox)
	conf := filepath.Join(dir, "mbsyncrc")
	os.WriteFile(conf, []byte(rc), 0o600)
	os.MkdirAll(filepath.Join(dir, "mail"), 0o700)
	cmd := exec.Command("mbsync", "-q", "-c", conf, "-a")
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("mbsync: %v\n%s", err, out)
	}
	n := 0
	for _, sub := range []string{"cur", "new"} {
		es, _ := os.ReadDir(filepath.Join(dir, "mail", mailbox, sub))
		n += len(es)
	}
	return n
}

// BenchmarkIMAPMbsyncAnnounce is a full mbsync of an announce archive of
// 10,000 messages to an empty Maildir: from cvd, and from Dovecot (when
// installed) serving the same messages from a Maildir, for the ratio.
//
//	go test ./cmd/cvd -run '^$' -bench IMAPMbsync -benchtime 3x
func BenchmarkIMAPMbsyncAnnounce(b *testing.B) {
	if _, err := exec.LookPath("mbsync"); err != nil {
		b.Skip("mbsync is not installed (apt-get install isync)")
	}
	w := newIMAPWorld(b)
	msgs := announcements(b, w.key, benchAnnouncements)
	ctx := context.Background()
	const user, password = "reader@example.org", "bench-password"
	err := w.db.Write(ctx, func(tx *sql.Tx) error {
		l := &store.List{Name: lists.AnnounceList, Kind: store.ListAnnounce, CreatedAt: time.Now()}
		if err := store.CreateListTx(ctx, tx, l); err != nil {
			return err
		}
		for i, m := range msgs {
			p := &store.Post{ListID: l.ID, MessageID: fmt.Sprintf("<announce-%d@example.org>", i), Sender: "security@example.org",
				Status: lists.PostDistributed, Signature: "good", ReceivedAt: time.Now(), Archive: m}
			if err := store.AddPostTx(ctx, tx, p); err != nil {
				return err
			}
		}
		_, err := store.SetIMAPPasswordTx(ctx, tx, user, accounts.HashPassword(password), time.Now())
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("cvd", func(b *testing.B) {
		if n := mbsyncPlain(b, w.addr, user, password, "Announce"); n != benchAnnouncements {
			b.Fatalf("synced %d messages", n)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			mbsyncPlain(b, w.addr, user, password, "Announce")
		}
	})
	b.Run("dovecot", func(b *testing.B) {
		addr := startDovecot(b, "reader", password, msgs)
		if n := mbsyncPlain(b, addr, "reader", password, "Announce"); n != benchAnnouncements {
			b.Fatalf("synced %d messages from Dovecot", n)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			mbsyncPlain(b, addr, "reader", password, "Announce")
		}
	})
}

// startDovecot runs Dovecot as a plain program on a free loopback port
// with a generated configuration, serving msgs as the user's Announce
// Maildir folder, and stops it when the benchmark ends.
func startDovecot(b testing.TB, user, password string, msgs [][]byte) string {
	bin := "/usr/sbin/dovecot"
	if _, err := os.Stat(bin); err != nil {
		b.Skip("Dovecot is not installed (apt-get install dovecot-imapd)")
	}
	d, err := os.MkdirTemp("", "dovecot")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	os.Chmod(d, 0o755) // Dovecot's auth process reads the passwd file as its own user
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		// Dovecot refuses mail access as root: use its own user.
		out, err := exec.Command("id", "-u", "dovecot").Output()
		if err != nil {
			b.Skip("running as root and there is no dovecot user")
		}
		uid, _ = strconv.Atoi(strings.TrimSpace(string(out)))
		out, _ = exec.Command("id", "-g", "dovecot").Output()
		gid, _ = strconv.Atoi(strings.TrimSpace(string(out)))
	}
	folder := filepath.Join(d, "mail", user, "Announce")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(folder, sub), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	for i, m := range msgs {
		name := fmt.Sprintf("%d.M%dP1.bench,S=%d:2,", 1767225600+i, i, len(m))
		if err := os.WriteFile(filepath.Join(folder, "cur", name), m, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	for _, dir := range []string{"run", "state", "home"} {
		os.MkdirAll(filepath.Join(d, dir), 0o755)
	}
	if os.Getuid() == 0 {
		exec.Command("chown", "-R", fmt.Sprintf("%d:%d", uid, gid), filepath.Join(d, "mail"), filepath.Join(d, "home")).Run()
	}
	os.WriteFile(filepath.Join(d, "passwd"), []byte(user+":{PLAIN}"+password+"\n"), 0o644)
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:%[1]s/mail/%%u:LAYOUT=fs
first_valid_uid = 1
first_valid_gid = 1
passdb {
  driver = passwd-file
  args = %[1]s/passwd
}
userdb {
  driver = static
  args = uid=%[2]d gid=%[3]d home=%[1]s/home/%%u
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = %[4]d
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
`, d, uid, gid, port)
	cf := filepath.Join(d, "dovecot.conf")
	os.WriteFile(cf, []byte(conf), 0o644)
	// No pipes: the daemon would keep them open and Run would not return.
	if err := exec.Command(bin, "-c", cf).Run(); err != nil {
		log, _ := os.ReadFile(filepath.Join(d, "dovecot.log"))
		b.Fatalf("dovecot: %v\n%s", err, log)
	}
	b.Cleanup(func() {
		exec.Command(bin, "-c", cf, "stop").Run()
		if b.Failed() {
			log, _ := os.ReadFile(filepath.Join(d, "dovecot.log"))
			b.Logf("dovecot log:\n%s", log)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(60 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(d, "dovecot.log"))
			b.Fatalf("dovecot does not listen on %s:\n%s", addr, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr
}
