package crypto

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// signatureID identifies one signature whatever the encoding around it:
// the signer, the signature's hashed metadata (version, type, algorithms,
// creation time, hashed subpackets), its hash tag, and a digest of the
// data it covers in a form coarser than any OpenPGP canonicalization
// (carriage returns dropped, trailing blanks of each line and trailing
// line breaks removed). Nothing in it can change without the signature
// failing: the unhashed subpackets and the signature value itself (which
// ECDSA lets an outsider re-encode) are left out on purpose.
func signatureID(signer string, sig *packet.Signature, data []byte) string {
	if sig == nil {
		return ""
	}
	h := sha256.New()
	h.Write([]byte(strings.ToUpper(signer)))
	h.Write([]byte{0, byte(sig.Version), byte(sig.SigType), byte(sig.PubKeyAlgo), byte(sig.Hash), 0})
	h.Write([]byte(sig.CreationTime.UTC().Format("20060102150405")))
	h.Write(sig.HashSuffix)
	h.Write(sig.HashTag[:])
	d := coarseDigest(data)
	h.Write(d[:])
	return hex.EncodeToString(h.Sum(nil))
}

// coarseDigest is the SHA-256 of data in one form for every byte string
// that a text or binary signature accepts as the same content: carriage
// returns dropped, blanks at the end of each line and line breaks at the
// end removed. It is computed line by line, without a copy of data.
func coarseDigest(data []byte) [32]byte {
	h := sha256.New()
	pending, first := 0, true
	for len(data) > 0 || first {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if !first {
			pending++
		}
		first = false
		line = bytes.TrimRight(line, " \t\r")
		if len(line) == 0 {
			continue
		}
		for ; pending > 0; pending-- {
			h.Write([]byte{'\n'})
		}
		for len(line) > 0 {
			i := bytes.IndexByte(line, '\r')
			if i < 0 {
				h.Write(line)
				break
			}
			h.Write(line[:i])
			line = line[i+1:]
		}
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}
