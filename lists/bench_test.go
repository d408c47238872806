package lists_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/store"
)

// BenchmarkListPost measures one signed and encrypted 100 KiB post on an
// incident list of 50 Curve25519 members, through the path the SMTP intake
// uses: spooled, routed, opened, verified, sealed 50 times, archived,
// queued and committed.
func BenchmarkListPost(b *testing.B) {
	for _, members := range []int{10, 50} {
		b.Run(fmt.Sprintf("members=%d/body=100KiB", members), func(b *testing.B) { benchPost(b, members, 100<<10) })
	}
}

func benchPost(b *testing.B, members, size int) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(b.TempDir(), "cvd.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	priv, _, err := crypto.GenerateKey("bench", "security@"+domain, crypto.KindCurve25519)
	if err != nil {
		b.Fatal(err)
	}
	key, _ := crypto.ParseKey(priv)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := &lists.Service{DB: db, Domain: domain, Key: key, Log: log}
	router := &embargo.Router{DB: db, Domain: domain, Lists: svc, Log: log}
	if _, err := svc.CreateList(ctx, "2026-100", store.ListIncident, ""); err != nil {
		b.Fatal(err)
	}
	var poster *crypto.Key
	for i := range members {
		email := fmt.Sprintf("member%d@example.net", i)
		mpriv, mpub, err := crypto.GenerateKey(fmt.Sprintf("Member %d", i), email, crypto.KindCurve25519)
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			poster, _ = crypto.ParseKey(mpriv)
		}
		if _, err := svc.AddMember(ctx, "2026-100", lists.NewMember{Email: email, Role: "downstream", Key: mpub}); err != nil {
			b.Fatal(err)
		}
	}
	body := make([]byte, size*3/4)
	rand.Read(body)
	enc := base64.StdEncoding.EncodeToString(body)
	var sb strings.Builder
	sb.WriteString("Subject: patch\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for len(enc) > 76 {
		sb.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	sb.WriteString(enc + "\r\n")
	var outer textproto.Header
	outer.Set("From", "Member 0 <member0@example.net>")
	outer.Set("To", "security+2026-100@example.org")
	outer.Set("Message-Id", "<bench-0000000000@example.net>")
	sealed, err := crypto.Seal([]byte(sb.String()), outer, poster, key.Public(), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	raw := string(sealed)
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for i := range b.N {
		msg := strings.Replace(raw, "<bench-0000000000@", fmt.Sprintf("<bench-%010d@", i), 1)
		if _, err := db.Spool(ctx, store.Envelope{ReceivedAt: time.Now(), MailFrom: "member0@example.net", Rcpts: []string{"security+2026-100@example.org"}}, []byte(msg)); err != nil {
			b.Fatal(err)
		}
		n, _, err := router.RouteOnce(ctx, 0)
		if err != nil || n != 1 {
			b.Fatalf("routed %d: %v", n, err)
		}
	}
	b.StopTimer()
	ps, _ := db.Posts(ctx, 1)
	for _, p := range ps {
		if p.Status != "distributed" {
			b.Fatalf("post %d %s", p.ID, p.Status)
		}
	}
}
