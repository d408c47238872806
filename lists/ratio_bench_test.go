package lists_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/cvd-project/cvd/crypto"
)

// BenchmarkListPostRatio runs BenchmarkListPost (50 members, 100 KiB) and
// the crypto floor beside it in the same process: the fan-out of the
// same 100 KiB to 50 Curve25519 keys alone, as crypto's
// BenchmarkSealFanout/curve25519/100KiB/n=50 measures it. It prints the
// whole path as a multiple of the sealing.
//
//	go test -run '^$' -bench ListPostRatio -count 3 ./lists
func BenchmarkListPostRatio(b *testing.B) {
	var post, seal time.Duration
	b.Run("ListPost/members=50/body=100KiB", func(b *testing.B) {
		benchPost(b, 50, 100<<10)
		post = b.Elapsed() / time.Duration(b.N)
	})
	b.Run("SealFanout/curve25519/100KiB/n=50", func(b *testing.B) {
		benchSealFloor(b, 50, 100<<10)
		seal = b.Elapsed() / time.Duration(b.N)
	})
	if post > 0 && seal > 0 {
		fmt.Printf("ListPostRatio: ListPost %.1f ms/op, SealFanout %.1f ms/op: the post path is %.1fx the sealing\n",
			float64(post)/1e6, float64(seal)/1e6, float64(post)/float64(seal))
	}
}

// benchSealFloor is crypto's benchSeal with exported calls: one entity of
// size bytes of base64 text sealed for n Curve25519 keys.
func benchSealFloor(b *testing.B, n, size int) {
	priv, _, err := crypto.GenerateKey("List", "list@example.org", crypto.KindCurve25519)
	if err != nil {
		b.Fatal(err)
	}
	signer, _ := crypto.ParseKey(priv)
	keys := make([]*crypto.Key, n)
	for i := range keys {
		_, pub, err := crypto.GenerateKey(fmt.Sprintf("Member%02d", i), fmt.Sprintf("member%02d@example.org", i), crypto.KindCurve25519)
		if err != nil {
			b.Fatal(err)
		}
		if keys[i], err = crypto.ParseKey(pub); err != nil {
			b.Fatal(err)
		}
	}
	raw := make([]byte, size*3/4)
	rand.Read(raw)
	enc := base64.StdEncoding.EncodeToString(raw)
	var inner bytes.Buffer
	inner.WriteString("Subject: [2026-001] benchmark body\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	for len(enc) > 76 {
		inner.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	inner.WriteString(enc + "\r\n")
	var outer textproto.Header
	outer.Add("Message-Id", "<post-1@example.org>")
	outer.Add("Date", time.Now().Format(time.RFC1123Z))
	outer.Add("To", "security+2026-001@example.org")
	outer.Add("From", "Security list <security+2026-001@example.org>")
	now := time.Now()
	b.SetBytes(int64(inner.Len()))
	b.ResetTimer()
	for range b.N {
		out, err := crypto.SealFanout(inner.Bytes(), outer, signer, keys, now)
		if err != nil {
			b.Fatal(err)
		}
		if len(out) != n {
			b.Fatal("missing copies")
		}
	}
}
