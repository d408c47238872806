package crypto

import (
	"bytes"
	stdcrypto "crypto"
	"fmt"
	"io"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// ClearSign returns text as an OpenPGP cleartext-signed message
// (-----BEGIN PGP SIGNED MESSAGE-----), signed by signer at time at: the
// form RFC 9116 recommends for security.txt.
func ClearSign(text []byte, signer *Key, at time.Time) ([]byte, error) {
	if err := checkSigner(signer); err != nil {
		return nil, fmt.Errorf("clear-sign: %w", err)
	}
	sk, ok := signer.e.SigningKey(at)
	if !ok || sk.PrivateKey == nil {
		return nil, fmt.Errorf("clear-sign: key %s has no usable signing key", signer.Fingerprint())
	}
	var b bytes.Buffer
	w, err := clearsign.Encode(&b, sk.PrivateKey, &packet.Config{DefaultHash: stdcrypto.SHA512, Time: func() time.Time { return at }})
	if err != nil {
		return nil, fmt.Errorf("clear-sign: %w", err)
	}
	if _, err := w.Write(text); err != nil {
		return nil, fmt.Errorf("clear-sign: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("clear-sign: %w", err)
	}
	// Re-armor the signature with a CRC24 checksum: GnuPG 2.2 misreads
	// armor without one.
	out := b.Bytes()
	i := bytes.Index(out, []byte("-----BEGIN PGP SIGNATURE-----"))
	if i < 0 {
		return nil, fmt.Errorf("clear-sign: no signature block")
	}
	blk, err := armor.Decode(bytes.NewReader(out[i:]))
	if err != nil {
		return nil, fmt.Errorf("clear-sign: %w", err)
	}
	sig, err := io.ReadAll(blk.Body)
	if err != nil {
		return nil, fmt.Errorf("clear-sign: %w", err)
	}
	return appendArmor(append([]byte(nil), out[:i]...), "PGP SIGNATURE", sig), nil
}
