package crypto

import (
	"fmt"
	"io"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// EncryptStream returns a writer that encrypts what is written to it to
// the public key to (binary OpenPGP, AES-256), signed by signer when it is
// not nil, and writes the result to w. Close finishes the message; it
// does not close w.
func EncryptStream(w io.Writer, to, signer *Key, name string, at time.Time) (io.WriteCloser, error) {
	if err := CheckUsable(to, at); err != nil {
		return nil, err
	}
	if !to.CanEncrypt(at) {
		return nil, fmt.Errorf("key %s has no usable encryption subkey", to.Fingerprint())
	}
	cfg := &packet.Config{Time: func() time.Time { return at }, DefaultHash: sealHash, DefaultCipher: packet.CipherAES256}
	var sign *openpgp.Entity
	if signer != nil {
		sign = signer.e
	}
	wc, err := openpgp.Encrypt(w, []*openpgp.Entity{to.e}, sign, &openpgp.FileHints{IsBinary: true, FileName: name, ModTime: at}, cfg)
	if err != nil {
		return nil, fmt.Errorf("encrypt to %s: %w", to.Fingerprint(), err)
	}
	return wc, nil
}
