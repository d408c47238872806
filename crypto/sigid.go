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
	d := sha256.Sum256(coarseText(data))
	h.Write(d[:])
	return hex.EncodeToString(h.Sum(nil))
}

// coarseText maps every byte string that a text or binary signature
// accepts as the same content to one form.
func coarseText(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r"), nil)
	lines := bytes.Split(b, []byte("\n"))
	for i, l := range lines {
		lines[i] = bytes.TrimRight(l, " \t")
	}
	return bytes.TrimRight(bytes.Join(lines, []byte("\n")), "\n")
}
