package crypto

import (
	"testing"
)

var fuzzLimits = Limits{
	MaxMessageBytes:   1 << 20,
	MaxHeaderBytes:    16 << 10,
	MaxDepth:          8,
	MaxParts:          64,
	MaxPlaintextBytes: 4 << 20,
	MaxExpansion:      16,
}

// FuzzOpen feeds arbitrary bytes to Open and Discover: they must not
// panic and must respect the limits.
func FuzzOpen(f *testing.F) {
	list, alice := ed(f, "list"), ed(f, "alice")
	sealed, err := Seal([]byte(innerEntity), outerHeader("list@example.org"), alice, list, testNow)
	if err != nil {
		f.Fatal(err)
	}
	signed, err := SignClear([]byte("Content-Type: text/plain\r\n\r\nadvisory\r\n"), outerHeader("announce@example.org"), alice, testNow)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add(signed)
	f.Add([]byte(nested(4)))
	f.Add(multipartSigned(signedPart, signAt(f, alice, []byte(signedPart), testNow)))
	f.Add([]byte("Subject: ...\r\nMIME-Version: 1.0\r\n" + encryptedPart(encryptUnsigned(f, list, []byte(nested(2))))))
	f.Add([]byte("Content-Type: text/plain\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQ==\r\n-----END PGP MESSAGE-----\r\n"))
	f.Add([]byte("Content-Type: text/plain\r\n\r\n-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\nx\r\n-----BEGIN PGP SIGNATURE-----\r\n\r\n-----END PGP SIGNATURE-----\r\n"))
	f.Add([]byte("Autocrypt: addr=a@b; keydata=AAAA\r\nContent-Type: application/pgp-keys\r\n\r\n-----BEGIN PGP PUBLIC KEY BLOCK-----\r\n"))
	f.Add([]byte("From: a\n\nplain\n"))
	dec, ver := []*Key{list}, []*Key{alice.Public()}
	f.Fuzz(func(t *testing.T, raw []byte) {
		o, err := Open(raw, dec, ver, testNow, fuzzLimits)
		if err == nil {
			if int64(len(o.Entity)) > fuzzLimits.MaxMessageBytes+fuzzLimits.MaxPlaintextBytes {
				t.Fatalf("entity of %d bytes", len(o.Entity))
			}
			if o.Signature == Good && o.Signer != alice.Fingerprint() {
				t.Fatalf("good signature by %s", o.Signer)
			}
		}
		if found, err := Discover(raw, fuzzLimits); err == nil {
			for _, k := range found {
				if k.Key.HasPrivate() {
					t.Fatal("discovered key carries secret material")
				}
			}
		}
	})
}
