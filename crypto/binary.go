package crypto

import (
	"bytes"
	"fmt"
)

// BinaryPublic returns the public key as OpenPGP packets (no armor), as an
// Autocrypt header's keydata or a Web Key Directory serves it.
func (k *Key) BinaryPublic() ([]byte, error) {
	var b bytes.Buffer
	if err := k.e.Serialize(&b); err != nil {
		return nil, fmt.Errorf("serialize key %s: %w", k.Fingerprint(), err)
	}
	return b.Bytes(), nil
}
