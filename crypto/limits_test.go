package crypto

import (
	"bytes"
	"compress/flate"
	stdcrypto "crypto"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

func wantLimit(t *testing.T, err error, what string) {
	t.Helper()
	var le *LimitError
	if !errors.Is(err, ErrLimit) || !errors.As(err, &le) || le.What != what {
		t.Fatalf("want limit %q, got %v", what, err)
	}
}

var (
	bombOnce sync.Once
	bomb     []byte
)

// compressionBomb is 200 MiB of zeros, compressed (RFC 1951, as OpenPGP
// "ZIP"), signed by alice and encrypted to the list key, as a PGP/MIME
// message. Deflating 200 MiB takes long under -race, so the packets are
// built by hand: once the window holds only zeros, every flushed 1 MiB of
// zeros deflates to the same bytes, which are repeated.
func compressionBomb(t *testing.T) []byte {
	bombOnce.Do(func() { bomb = buildBomb(t, 200) })
	if bomb == nil {
		t.Fatal("no bomb")
	}
	return bomb
}

func buildBomb(t *testing.T, mib int) []byte {
	list, alice := ed(t, "list"), ed(t, "alice")
	cfg := &packet.Config{Time: func() time.Time { return testNow }}
	size := uint32(mib << 20)
	zeros := make([]byte, 1<<20)

	priv := alice.e.PrivateKey
	sig := &packet.Signature{Version: 4, SigType: packet.SigTypeBinary, PubKeyAlgo: priv.PubKeyAlgo,
		Hash: stdcrypto.SHA256, CreationTime: testNow, IssuerKeyId: &priv.KeyId, IssuerFingerprint: priv.Fingerprint}
	h, err := sig.PrepareSign(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < mib; i++ {
		h.Write(zeros)
	}
	if err := sig.Sign(h, priv, cfg); err != nil {
		t.Fatal(err)
	}
	var signed bytes.Buffer
	ops := &packet.OnePassSignature{Version: 3, SigType: packet.SigTypeBinary, Hash: stdcrypto.SHA256,
		PubKeyAlgo: priv.PubKeyAlgo, KeyId: priv.KeyId, IsLast: true}
	if err := ops.Serialize(&signed); err != nil {
		t.Fatal(err)
	}
	lit := binary.BigEndian.AppendUint32([]byte{0xC0 | 11, 0xFF}, size+6)
	signed.Write(append(lit, 'b', 0, 0, 0, 0, 0))

	var z bytes.Buffer
	fw, err := flate.NewWriter(&z, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	chunk := func() []byte {
		mark := z.Len()
		fw.Write(zeros)
		fw.Flush()
		return append([]byte(nil), z.Bytes()[mark:]...)
	}
	fw.Write(signed.Bytes())
	chunk()
	steady := chunk()
	if again := chunk(); !bytes.Equal(again, steady) {
		t.Fatal("deflate output of zeros not steady")
	}
	for i := 3; i < mib; i++ {
		z.Write(steady)
	}
	var sigPkt bytes.Buffer
	if err := sig.Serialize(&sigPkt); err != nil {
		t.Fatal(err)
	}
	fw.Write(sigPkt.Bytes())
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	compressed := binary.BigEndian.AppendUint32([]byte{0xC0 | 8, 0xFF}, uint32(z.Len()+1))
	compressed = append(append(compressed, byte(packet.CompressionZIP)), z.Bytes()...)

	enc, _ := list.e.EncryptionKey(testNow)
	sk := make([]byte, 32)
	if _, err := rand.Read(sk); err != nil {
		t.Fatal(err)
	}
	var msg bytes.Buffer
	if err := packet.SerializeEncryptedKeyAEAD(&msg, enc.PublicKey, packet.CipherAES256, false, sk, cfg); err != nil {
		t.Fatal(err)
	}
	data, err := encryptData(compressed, packet.CipherAES256, sk, cfg)
	if err != nil {
		t.Fatal(err)
	}
	msg.Write(data)
	return []byte("Subject: ...\r\nMIME-Version: 1.0\r\n" + encryptedPart(appendArmor(nil, "PGP MESSAGE", msg.Bytes())))
}

// TestBombBuilder checks that a small bomb built the same way is a valid
// signed message that opens in full.
func TestBombBuilder(t *testing.T) {
	list, alice := ed(t, "list"), ed(t, "alice")
	o, err := Open(buildBomb(t, 5), []*Key{list}, []*Key{alice.Public()}, testNow, Limits{MaxExpansion: 1 << 20, MaxHeaderBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if !o.Encrypted || o.Signature != Good {
		t.Fatalf("encrypted=%v sig=%v", o.Encrypted, o.Signature)
	}
}

func TestCompressionBomb(t *testing.T) {
	list, alice := ed(t, "list"), ed(t, "alice")
	raw := compressionBomb(t)
	t.Logf("bomb message: %d bytes for 200 MiB of plaintext", len(raw))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := Open(raw, []*Key{list}, []*Key{alice.Public()}, testNow, Limits{})
	runtime.ReadMemStats(&after)
	wantLimit(t, err, "expansion ratio")
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 96<<20 {
		t.Fatalf("allocated %d MiB opening the bomb", alloc>>20)
	}

	_, err = Open(raw, []*Key{list}, nil, testNow, Limits{MaxPlaintextBytes: 4 << 20, MaxExpansion: 1 << 30})
	wantLimit(t, err, "plaintext size")
}

func nested(depth int) string {
	s := "Content-Type: text/plain\r\n\r\nleaf\r\n"
	for i := 0; i < depth; i++ {
		b := "b" + strings.Repeat("x", i%7) + string(rune('a'+i%26))
		s = "Content-Type: multipart/mixed; boundary=\"" + b + "\"\r\n\r\n--" + b + "\r\n" + s + "\r\n--" + b + "--\r\n"
	}
	return "Subject: deep\r\nMIME-Version: 1.0\r\n" + s
}

func TestMIMELimits(t *testing.T) {
	list := ed(t, "list")
	t.Run("depth", func(t *testing.T) {
		if _, err := Open([]byte(nested(10)), nil, nil, testNow, Limits{}); err != nil {
			t.Fatalf("depth 10: %v", err)
		}
		_, err := Open([]byte(nested(100)), nil, nil, testNow, Limits{})
		wantLimit(t, err, "MIME depth")
	})
	t.Run("depth inside encryption", func(t *testing.T) {
		raw := "Subject: ...\r\nMIME-Version: 1.0\r\n" + encryptedPart(encryptUnsigned(t, list, []byte(nested(100))))
		_, err := Open([]byte(raw), []*Key{list}, nil, testNow, Limits{})
		wantLimit(t, err, "MIME depth")
	})
	t.Run("parts", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("Subject: many\r\nContent-Type: multipart/mixed; boundary=P\r\n\r\n")
		for i := 0; i < 5000; i++ {
			b.WriteString("--P\r\nContent-Type: text/plain\r\n\r\nx\r\n")
		}
		b.WriteString("--P--\r\n")
		_, err := Open([]byte(b.String()), nil, nil, testNow, Limits{})
		wantLimit(t, err, "MIME parts")
	})
	t.Run("header", func(t *testing.T) {
		raw := "Subject: big\r\nX-Junk: " + strings.Repeat("a", 300<<10) + "\r\n\r\nbody\r\n"
		_, err := Open([]byte(raw), nil, nil, testNow, Limits{})
		wantLimit(t, err, "header size")
		raw = "Subject: s\r\nContent-Type: multipart/mixed; boundary=P\r\n\r\n--P\r\n" +
			strings.Repeat("X-Folded: a\r\n b\r\n", 20000) + "\r\nx\r\n--P--\r\n"
		_, err = Open([]byte(raw), nil, nil, testNow, Limits{})
		wantLimit(t, err, "header size")
	})
	t.Run("message", func(t *testing.T) {
		_, err := Open([]byte(nested(3)), nil, nil, testNow, Limits{MaxMessageBytes: 64})
		wantLimit(t, err, "message size")
		_, err = Discover([]byte(nested(3)), Limits{MaxMessageBytes: 64})
		wantLimit(t, err, "message size")
	})
}

func TestCappedReader(t *testing.T) {
	limErr := &LimitError{What: "x", Limit: 10}
	b, err := readCapped(strings.NewReader("0123456789"), 10, limErr)
	if err != nil || string(b) != "0123456789" {
		t.Fatalf("%q %v", b, err)
	}
	_, err = readCapped(io.MultiReader(strings.NewReader("01234"), strings.NewReader("567890")), 10, limErr)
	if err != limErr {
		t.Fatalf("err = %v", err)
	}
	// A size hint changes the buffer, not what is read or refused.
	long := strings.Repeat("0123456789", 300)
	for _, hint := range []int{-1, 0, 1, 511, 512, 513, 2999, 3000, 3001, 1 << 20} {
		b, err := readCappedSized(iotest.OneByteReader(strings.NewReader(long)), 3000, limErr, hint)
		if err != nil || string(b) != long {
			t.Fatalf("hint %d: %d bytes, %v", hint, len(b), err)
		}
		if _, err := readCappedSized(strings.NewReader(long+"x"), 3000, limErr, hint); err != limErr {
			t.Fatalf("hint %d: one byte over the limit: %v", hint, err)
		}
	}
}
