package crypto

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sync"
	"testing"

	gopenpgp "github.com/ProtonMail/gopenpgp/v2/crypto"
)

const maxBenchRecipients = 50

// benchMembers returns n cached recipient keys of kind, generating all 50
// once per process, in parallel (RSA-3072 takes ~0.4 s per key here).
func benchMembers(b *testing.B, kind string, n int) []*Key {
	b.Helper()
	keys := make([]*Key, maxBenchRecipients)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			keys[i] = testKey(b, fmt.Sprintf("member%02d", i), kind)
		}()
	}
	wg.Wait()
	return keys[:n]
}

// benchInner is an inner MIME entity with a body of size bytes of
// base64 text (incompressible, 7-bit, 76-column lines).
func benchInner(size int) []byte {
	raw := make([]byte, size*3/4)
	if _, err := rand.Read(raw); err != nil {
		panic(err)
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	var buf bytes.Buffer
	buf.WriteString("Subject: [2026-001] benchmark body\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	for len(enc) > 76 {
		buf.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	buf.WriteString(enc + "\r\n")
	return buf.Bytes()
}

var benchSizes = []struct {
	name string
	size int
}{{"4KiB", 4 << 10}, {"100KiB", 100 << 10}}

// BenchmarkSealFanout seals one post for N members: one signature, one
// PKESK per copy, all copies sharing one encrypted data packet.
func BenchmarkSealFanout(b *testing.B) {
	for _, kind := range []string{KindCurve25519, KindRSA3072} {
		for _, sz := range benchSizes {
			for _, n := range []int{1, 10, 50} {
				b.Run(fmt.Sprintf("%s/%s/n=%d", kind, sz.name, n), func(b *testing.B) {
					benchSeal(b, kind, sz.size, n, true)
				})
			}
		}
	}
}

// BenchmarkSealFanoutPerCopyKey is the alternative that encrypts the data
// packet separately for every copy (fresh session key each).
func BenchmarkSealFanoutPerCopyKey(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(fmt.Sprintf("%s/%s/n=50", KindCurve25519, sz.name), func(b *testing.B) {
			benchSeal(b, KindCurve25519, sz.size, 50, false)
		})
	}
}

func benchSeal(b *testing.B, kind string, size, n int, share bool) {
	signer := testKey(b, "list", kind)
	members := benchMembers(b, kind, n)
	inner := benchInner(size)
	outer := outerHeader("security+2026-001@example.org")
	b.SetBytes(int64(len(inner)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out, err := sealFanout(inner, outer, signer, members, testNow, share, ObscuredSubject)
		if err != nil {
			b.Fatal(err)
		}
		if len(out) != n {
			b.Fatal("missing copies")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n)/1e3, "µs/recipient")
}

// BenchmarkRawEncryptAll is the floor: one gopenpgp encryption of the
// 100 KiB body to all 50 Curve25519 members at once (one ciphertext, 50
// PKESKs), armored, signed or not.
func BenchmarkRawEncryptAll(b *testing.B) {
	members := benchMembers(b, KindCurve25519, maxBenchRecipients)
	kr, err := gopenpgp.NewKeyRing(nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range members {
		k, err := gopenpgp.NewKeyFromArmored(string(mustArmorPublic(b, m)))
		if err != nil {
			b.Fatal(err)
		}
		if err := kr.AddKey(k); err != nil {
			b.Fatal(err)
		}
	}
	lk, err := gopenpgp.NewKeyFromArmored(string(mustArmorPrivate(b, testKey(b, "list", KindCurve25519))))
	if err != nil {
		b.Fatal(err)
	}
	signer, err := gopenpgp.NewKeyRing(lk)
	if err != nil {
		b.Fatal(err)
	}
	body := benchInner(100 << 10)
	for _, c := range []struct {
		name   string
		signer *gopenpgp.KeyRing
	}{{"signed", signer}, {"unsigned", nil}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for i := 0; i < b.N; i++ {
				msg, err := kr.Encrypt(gopenpgp.NewPlainMessage(body), c.signer)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := msg.GetArmoredWithCustomHeaders("", ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpen opens a signed and encrypted 100 KiB PGP/MIME message.
func BenchmarkOpen(b *testing.B) {
	list, alice := ed(b, "list"), ed(b, "alice")
	raw, err := Seal(benchInner(100<<10), outerHeader("security+2026-001@example.org"), alice, list, testNow)
	if err != nil {
		b.Fatal(err)
	}
	dec, ver := []*Key{list}, []*Key{alice.Public()}
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o, err := Open(raw, dec, ver, testNow, Limits{})
		if err != nil || o.Signature != Good {
			b.Fatal(err)
		}
	}
}
