package lists_test

import (
	"bytes"
	"context"
	"database/sql"
	"mime"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cvd-project/cvd/internal/gpgtest"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/store"
)

// verifySigned checks a PGP/MIME multipart/signed message with gpg --verify,
// over the exact bytes of its first part, and returns that part.
func verifySigned(t *testing.T, u *gpgtest.User, raw []byte) string {
	t.Helper()
	head, body, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	m := regexp.MustCompile(`(?is)content-type:\s*multipart/signed;[^\r\n]*(?:\r\n[ \t][^\r\n]*)*`).Find(head)
	if m == nil {
		t.Fatalf("not multipart/signed:\n%s", head)
	}
	_, params, err := mime.ParseMediaType(strings.Join(strings.Fields(strings.TrimPrefix(strings.ToLower(string(m)), "content-type:")), " "))
	if err != nil {
		t.Fatal(err)
	}
	delim := []byte("--" + params["boundary"])
	parts := bytes.Split(body, delim)
	if len(parts) < 4 {
		t.Fatalf("%d parts", len(parts))
	}
	signed := bytes.TrimSuffix(bytes.TrimPrefix(parts[1], []byte("\r\n")), []byte("\r\n"))
	sig := parts[2][bytes.Index(parts[2], []byte("-----BEGIN PGP SIGNATURE")):]
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "part"), signed, 0o600)
	os.WriteFile(filepath.Join(dir, "part.asc"), sig, 0o600)
	_, status, err := u.Try(nil, "--verify", filepath.Join(dir, "part.asc"), filepath.Join(dir, "part"))
	if err != nil || !gpgtest.HasStatus(status, "GOODSIG") {
		t.Fatalf("gpg --verify: %v\n%s", err, status)
	}
	return string(signed)
}

func TestAnnounceList(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if err := w.svc.EnsureAnnounceList(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.svc.EnsureAnnounceList(ctx); err != nil {
		t.Fatalf("second EnsureAnnounceList: %v", err)
	}
	reader := w.person("Rae Reader", "rae@reader.example", "never")

	// Double opt-in: a request mails a confirmation to the address.
	w.send(reader.Email, "announce+subscribe@example.org", "From: Rae <rae@reader.example>\r\nSubject: subscribe\r\n\r\n")
	q := w.queue()
	if len(q) != 1 || q[0].rcpt != reader.Email || q[0].kind != "subscribe-confirm" {
		t.Fatalf("queue after subscribe: %+v", q)
	}
	confirm := regexp.MustCompile(`(?m)^Reply-To: (announce\+confirm-[0-9a-f]+@example\.org)\r$`).FindSubmatch(q[0].raw)
	if confirm == nil || !bytes.Contains(q[0].raw, []byte("Auto-Submitted: auto-replied")) {
		t.Fatalf("confirmation:\n%s", q[0].raw)
	}
	// Asking again at once sends nothing more (subscription bombing).
	w.send(reader.Email, "announce+subscribe@example.org", "From: Rae <rae@reader.example>\r\nSubject: subscribe\r\n\r\n")
	if n := len(w.queue()); n != 1 {
		t.Errorf("%d messages after a second request", n)
	}
	w.send(reader.Email, string(confirm[1]), "From: Rae <rae@reader.example>\r\nSubject: Re: confirm\r\n\r\n")
	if q := w.queue(); len(q) != 2 || q[1].kind != "subscribed" || !bytes.Contains(q[1].raw, []byte(w.key.Fingerprint())) {
		t.Fatalf("after confirming: %+v", q)
	}
	// A confirmation token works once.
	w.send(reader.Email, string(confirm[1]), "From: Rae <rae@reader.example>\r\nSubject: Re: confirm\r\n\r\n")
	if n := len(w.queue()); n != 2 {
		t.Errorf("token reused: %d messages", n)
	}

	// An announcement: clear-signed by the project key, with unsubscribe
	// headers outside the signed part.
	inner := "Subject: [SECURITY] libexample 1.2.4 fixes CVE-2026-1234\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nUpgrade to 1.2.4.\r\n"
	var n int
	err := w.db.Write(ctx, func(tx *sql.Tx) (err error) {
		n, err = w.svc.AnnounceTx(ctx, tx, []byte(inner), store.OriginNotice, w.now())
		return err
	})
	if err != nil || n != 1 {
		t.Fatalf("announce: %d, %v", n, err)
	}
	q = w.queue()
	ann := q[len(q)-1]
	if ann.rcpt != reader.Email || ann.kind != "announce" {
		t.Fatalf("announcement queued as %+v", ann)
	}
	part := verifySigned(t, reader, ann.raw)
	if !strings.Contains(part, "Upgrade to 1.2.4.") || !strings.Contains(part, "Subject: [SECURITY] libexample 1.2.4 fixes CVE-2026-1234") {
		t.Errorf("signed part:\n%s", part)
	}
	for _, h := range []string{"List-Post: NO", "List-Id: <announce.example.org>", "List-Unsubscribe-Post: List-Unsubscribe=One-Click", "Auto-Submitted: auto-generated"} {
		if !bytes.Contains(ann.raw, []byte(h)) {
			t.Errorf("announcement lacks %q", h)
		}
	}
	tok := regexp.MustCompile(`List-Unsubscribe: <https://example\.org/unsubscribe/([0-9a-f]+)>, <mailto:announce\+unsubscribe@example\.org\?subject=unsubscribe>`).FindSubmatch(ann.raw)
	if tok == nil {
		t.Fatalf("no one-click link:\n%s", headerOf(ann.raw))
	}

	// Posting: refused from anyone but the list's coordinators.
	poster := w.person("Cora", "cora@example.org", "never")
	before := len(w.queue())
	w.post(poster, "announce", "Unsolicited.\n", 1)
	if n := len(w.queue()); n != before {
		t.Errorf("a non-coordinator's post went out")
	}
	w.join(lists.AnnounceList, poster, "coordinator")
	// Encrypted: refused unread; the coordinator gets a notice.
	w.send(poster.Email, "announce@example.org", gpgtest.PGPMIME("From: Cora <cora@example.org>\r\nTo: announce@example.org\r\nSubject: ...\r\nMessage-ID: <a2@example.org>\r\n",
		poster.EncryptSign([]byte("Subject: Advisory 2\r\nContent-Type: text/plain\r\n\r\nx-list: announce\r\n\r\nSecond advisory.\r\n"), w.key.Fingerprint())))
	q = w.queue()
	if len(q) != before+1 || q[len(q)-1].kind != "announce-refused" || q[len(q)-1].rcpt != poster.Email {
		t.Fatalf("coordinator's encrypted announcement: %+v", q[before:])
	}
	before++
	signed, _ := poster.Run([]byte("x-list: announce\n\nSecond advisory.\n"), "--clearsign", "--local-user", poster.Fpr)
	w.send(poster.Email, "announce@example.org", "From: Cora <cora@example.org>\r\nTo: announce@example.org\r\nSubject: Advisory 2\r\nMessage-ID: <a3@example.org>\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\n"+strings.ReplaceAll(signed, "\n", "\r\n"))
	q = w.queue()
	if len(q) != before+2 {
		t.Fatalf("coordinator's announcement: %d new messages, want 2 (subscriber and coordinator)", len(q)-before)
	}
	if part := verifySigned(t, reader, q[len(q)-2].raw); !strings.Contains(part, "Second advisory.") {
		t.Errorf("coordinator's announcement:\n%s", part)
	}

	// Unsubscribing by mail also takes a confirmation.
	w.send(reader.Email, "announce+unsubscribe@example.org", "From: Rae <rae@reader.example>\r\nSubject: unsubscribe\r\n\r\n")
	q = w.queue()
	uc := regexp.MustCompile(`(?m)^Reply-To: (announce\+confirm-[0-9a-f]+@example\.org)\r$`).FindSubmatch(q[len(q)-1].raw)
	if q[len(q)-1].kind != "unsubscribe-confirm" || uc == nil {
		t.Fatalf("unsubscribe request: %+v", q[len(q)-1])
	}
	w.send(reader.Email, string(uc[1]), "From: Rae <rae@reader.example>\r\nSubject: Re: confirm\r\n\r\n")
	if q := w.queue(); q[len(q)-1].kind != "unsubscribed" {
		t.Fatalf("after confirming unsubscribe: %+v", q[len(q)-1])
	}
	w.send(reader.Email, "announce+subscribe@example.org", "From: Rae <rae@reader.example>\r\nSubject: subscribe\r\n\r\n")
	q = w.queue()
	c2 := regexp.MustCompile(`(?m)^Reply-To: (announce\+confirm-[0-9a-f]+@example\.org)\r$`).FindSubmatch(q[len(q)-1].raw)
	w.send(reader.Email, string(c2[1]), "From: Rae <rae@reader.example>\r\nSubject: Re: confirm\r\n\r\n")

	// One-click unsubscribe.
	known, err := w.svc.OneClickUnsubscribe(ctx, string(tok[1]))
	if err != nil || !known {
		t.Fatalf("one-click: %v %v", known, err)
	}
	if known, _ := w.svc.OneClickUnsubscribe(ctx, "0000"); known {
		t.Error("unknown token accepted")
	}
	err = w.db.Write(ctx, func(tx *sql.Tx) (err error) {
		n, err = w.svc.AnnounceTx(ctx, tx, []byte(inner), store.OriginNotice, w.now())
		return err
	})
	if err != nil || n != 1 {
		t.Errorf("after unsubscribing, announcement went to %d (only the coordinator left): %v", n, err)
	}
}
