package crypto

import (
	"fmt"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// WithRetired returns k that also opens (decrypts, and verifies its own
// signatures on) mail made for the retired keys: earlier project keys
// after a rotation. It signs and is published as k alone.
func (k *Key) WithRetired(retired []*Key) *Key {
	out := &Key{e: k.e, retired: append([]*openpgp.Entity(nil), k.retired...)}
	for _, r := range retired {
		out.retired = append(out.retired, r.e)
	}
	return out
}

// Rotate creates the successor of old at time at: a new key of the same
// kind for old's primary user ID, whose user IDs old certifies, so that
// whoever trusts old can check the new key. old must hold its secret key.
func Rotate(old *Key, at time.Time) (*Key, error) {
	if !old.HasPrivate() {
		return nil, fmt.Errorf("rotate key %s: no secret key", old.Fingerprint())
	}
	id := old.e.PrimaryIdentity()
	if id == nil || id.UserId == nil {
		return nil, fmt.Errorf("rotate key %s: no user ID", old.Fingerprint())
	}
	kind := KindCurve25519
	if old.e.PrimaryKey.PubKeyAlgo == packet.PubKeyAlgoRSA {
		kind = KindRSA4096
		if bitLength(old.e.PrimaryKey) <= 3072 {
			kind = KindRSA3072
		}
	}
	nk, err := generate(id.UserId.Name, id.UserId.Email, kind, at, 0)
	if err != nil {
		return nil, fmt.Errorf("rotate key %s: %w", old.Fingerprint(), err)
	}
	cfg := &packet.Config{Time: func() time.Time { return at }}
	for uid := range nk.e.Identities {
		if err := nk.e.SignIdentity(uid, old.e, cfg); err != nil {
			return nil, fmt.Errorf("rotate key %s: certify %q: %w", old.Fingerprint(), uid, err)
		}
	}
	return nk, nil
}

// CertifiedBy reports whether signer certified one of k's user IDs.
func (k *Key) CertifiedBy(signer *Key) bool {
	for uid, id := range k.e.Identities {
		for _, sig := range id.Signatures {
			if sig.IssuerKeyId == nil || *sig.IssuerKeyId != signer.e.PrimaryKey.KeyId {
				continue
			}
			if signer.e.PrimaryKey.VerifyUserIdSignature(uid, k.e.PrimaryKey, sig) == nil {
				return true
			}
		}
	}
	return false
}

// Revoke adds a revocation signature to k (which must hold its secret
// key) with reason as text: "key compromised" when compromised, else
// "key superseded". The public key then carries the revocation, to be
// published where the key was.
func Revoke(k *Key, reason string, compromised bool, at time.Time) error {
	if !k.HasPrivate() {
		return fmt.Errorf("revoke key %s: no secret key", k.Fingerprint())
	}
	code := packet.KeySuperseded
	if compromised {
		code = packet.KeyCompromised
	}
	if err := k.e.RevokeKey(code, reason, &packet.Config{Time: func() time.Time { return at }}); err != nil {
		return fmt.Errorf("revoke key %s: %w", k.Fingerprint(), err)
	}
	return nil
}

// Retired returns the retired keys k opens mail for (see WithRetired).
func (k *Key) Retired() []*Key {
	out := make([]*Key, len(k.retired))
	for i, e := range k.retired {
		out[i] = &Key{e: e}
	}
	return out
}
