package crypto

import (
	"bytes"
	stdcrypto "crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Key is an OpenPGP certificate, with its secret key material when parsed
// from a private key block. A Key is not modified after parsing (except by
// Unlock) and may be shared between goroutines.
type Key struct {
	e *openpgp.Entity
	// retired are earlier project keys, kept to open mail sent to them
	// (see WithRetired).
	retired []*openpgp.Entity
}

// ParseKeys parses one or more keys: binary, or one or more armored
// blocks; public or private.
func ParseKeys(data []byte) ([]*Key, error) {
	var el openpgp.EntityList
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN ")) {
		blocks := bytes.Split(data, []byte("-----BEGIN "))
		for _, b := range blocks[1:] {
			block, err := armor.Decode(bytes.NewReader(append([]byte("-----BEGIN "), b...)))
			if err != nil {
				return nil, fmt.Errorf("parse key: armor: %w", err)
			}
			if block.Type != openpgp.PublicKeyType && block.Type != openpgp.PrivateKeyType {
				return nil, fmt.Errorf("parse key: unexpected armor type %q", block.Type)
			}
			more, err := openpgp.ReadKeyRing(block.Body)
			if err != nil {
				return nil, fmt.Errorf("parse key: %w", err)
			}
			el = append(el, more...)
		}
	} else {
		var err error
		if el, err = openpgp.ReadKeyRing(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("parse key: %w", err)
		}
	}
	if len(el) == 0 {
		return nil, errors.New("parse key: no key found")
	}
	keys := make([]*Key, len(el))
	for i, e := range el {
		keys[i] = &Key{e: e}
	}
	return keys, nil
}

// ParseKey parses exactly one key, armored or binary, public or private.
func ParseKey(data []byte) (*Key, error) {
	keys, err := ParseKeys(data)
	if err != nil {
		return nil, err
	}
	if len(keys) != 1 {
		return nil, fmt.Errorf("parse key: %d keys found, want 1", len(keys))
	}
	return keys[0], nil
}

// Fingerprint returns the primary key fingerprint in upper-case hex.
func (k *Key) Fingerprint() string {
	return strings.ToUpper(hex.EncodeToString(k.e.PrimaryKey.Fingerprint))
}

// KeyID returns the primary key's 64-bit key ID in upper-case hex.
func (k *Key) KeyID() string {
	return fmt.Sprintf("%016X", k.e.PrimaryKey.KeyId)
}

// UserIDs returns the user IDs ("Name <addr>") in a stable order.
func (k *Key) UserIDs() []string {
	ids := make([]string, 0, len(k.e.Identities))
	for name := range k.e.Identities {
		ids = append(ids, name)
	}
	sort.Strings(ids)
	return ids
}

// Emails returns the lower-cased addresses found in the user IDs.
func (k *Key) Emails() []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range k.UserIDs() {
		addr := strings.ToLower(strings.TrimSpace(k.e.Identities[id].UserId.Email))
		if addr == "" {
			if a, err := mail.ParseAddress(id); err == nil {
				addr = strings.ToLower(a.Address)
			}
		}
		if addr != "" && strings.Contains(addr, "@") && !seen[addr] {
			seen[addr] = true
			out = append(out, addr)
		}
	}
	return out
}

// Created returns the primary key's creation time.
func (k *Key) Created() time.Time { return k.e.PrimaryKey.CreationTime }

// Expires returns when the primary key expires, or the zero time.
func (k *Key) Expires() time.Time {
	sig, _ := k.e.PrimarySelfSignature()
	if sig == nil || sig.KeyLifetimeSecs == nil || *sig.KeyLifetimeSecs == 0 {
		return time.Time{}
	}
	return k.Created().Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second)
}

// Revoked reports whether the primary key is revoked at time at.
func (k *Key) Revoked(at time.Time) bool { return k.e.Revoked(at) }

// CanEncrypt reports whether the key has a valid encryption key at time at.
func (k *Key) CanEncrypt(at time.Time) bool {
	_, ok := k.e.EncryptionKey(at)
	return ok
}

// CanSign reports whether the key has a valid signing key at time at.
func (k *Key) CanSign(at time.Time) bool {
	_, ok := k.e.SigningKey(at)
	return ok
}

// HasPrivate reports whether the key carries secret key material.
func (k *Key) HasPrivate() bool {
	if k.e.PrivateKey != nil {
		return true
	}
	for _, sk := range k.e.Subkeys {
		if sk.PrivateKey != nil {
			return true
		}
	}
	return false
}

// Unlock decrypts passphrase-protected secret key material in place; call
// it before sharing the key between goroutines.
func (k *Key) Unlock(passphrase []byte) error {
	if err := k.e.DecryptPrivateKeys(passphrase); err != nil {
		return fmt.Errorf("unlock key %s: %w", k.Fingerprint(), err)
	}
	return nil
}

// Algorithm describes the primary key, e.g. "ed25519" or "rsa3072".
func (k *Key) Algorithm() string { return describeAlgo(k.e.PrimaryKey) }

func describeAlgo(pk *packet.PublicKey) string {
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSAEncryptOnly, packet.PubKeyAlgoRSASignOnly:
		return fmt.Sprintf("rsa%d", bitLength(pk))
	case packet.PubKeyAlgoDSA:
		return fmt.Sprintf("dsa%d", bitLength(pk))
	case packet.PubKeyAlgoElGamal:
		return fmt.Sprintf("elgamal%d", bitLength(pk))
	case packet.PubKeyAlgoEdDSA, packet.PubKeyAlgoEd25519:
		return "ed25519"
	case packet.PubKeyAlgoECDH, packet.PubKeyAlgoX25519:
		return "cv25519"
	case packet.PubKeyAlgoECDSA:
		return "ecdsa"
	}
	return fmt.Sprintf("algo%d", pk.PubKeyAlgo)
}

func bitLength(pk *packet.PublicKey) int {
	n, err := pk.BitLength()
	if err != nil {
		return 0
	}
	return int(n)
}

// Public returns the key without secret key material.
func (k *Key) Public() *Key {
	if !k.HasPrivate() {
		return k
	}
	e := *k.e
	e.PrivateKey = nil
	e.Subkeys = make([]openpgp.Subkey, len(k.e.Subkeys))
	for i, sk := range k.e.Subkeys {
		sk.PrivateKey = nil
		e.Subkeys[i] = sk
	}
	return &Key{e: &e}
}

// ArmoredPublic returns the armored public key block.
func (k *Key) ArmoredPublic() ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := k.e.Serialize(w); err != nil {
		return nil, fmt.Errorf("armor public key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// ArmoredPrivate returns the armored private key block (unprotected unless
// the key was parsed locked and never unlocked).
func (k *Key) ArmoredPrivate() ([]byte, error) {
	if !k.HasPrivate() {
		return nil, errors.New("armor private key: no secret key material")
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := k.e.SerializePrivateWithoutSigning(w, nil); err != nil {
		return nil, fmt.Errorf("armor private key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// KeyInfo is what a key store records about a key.
type KeyInfo struct {
	Fingerprint string
	UserIDs     []string
	Emails      []string
	Created     time.Time
	Expires     time.Time // zero: never
	Revoked     bool
	Armored     []byte // armored public key
}

// Info summarises the key as of time at.
func (k *Key) Info(at time.Time) (KeyInfo, error) {
	armored, err := k.ArmoredPublic()
	if err != nil {
		return KeyInfo{}, err
	}
	return KeyInfo{
		Fingerprint: k.Fingerprint(),
		UserIDs:     k.UserIDs(),
		Emails:      k.Emails(),
		Created:     k.Created(),
		Expires:     k.Expires(),
		Revoked:     k.Revoked(at),
		Armored:     armored,
	}, nil
}

// KeyProblem says why a key is unusable.
type KeyProblem int

// Reasons CheckUsable refuses a key.
const (
	KeyExpired KeyProblem = iota + 1
	KeyRevoked
	KeyWeak
	KeyNoEncryption
	KeyInvalid
)

func (p KeyProblem) String() string {
	switch p {
	case KeyExpired:
		return "expired"
	case KeyRevoked:
		return "revoked"
	case KeyWeak:
		return "weak"
	case KeyNoEncryption:
		return "no encryption key"
	case KeyInvalid:
		return "invalid"
	}
	return "unknown"
}

// KeyError is returned by CheckUsable (and by Seal for unusable recipients).
type KeyError struct {
	Fingerprint string
	Problem     KeyProblem
	Detail      string
}

func (e *KeyError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("key %s unusable: %s", e.Fingerprint, e.Problem)
	}
	return fmt.Sprintf("key %s unusable: %s: %s", e.Fingerprint, e.Problem, e.Detail)
}

// minRSABits is the smallest RSA, DSA or ElGamal modulus accepted.
const minRSABits = 2048

func weakAlgo(pk *packet.PublicKey) (bool, string) {
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSAEncryptOnly, packet.PubKeyAlgoRSASignOnly,
		packet.PubKeyAlgoDSA, packet.PubKeyAlgoElGamal:
		if n := bitLength(pk); n < minRSABits {
			return true, fmt.Sprintf("%s below %d bits", describeAlgo(pk), minRSABits)
		}
	}
	return false, ""
}

// CheckUsable returns nil if k can be used to encrypt to at time at, or a
// *KeyError saying why not: revoked, expired, weak (RSA, DSA or ElGamal
// under 2048 bits) or without a valid encryption key.
func CheckUsable(k *Key, at time.Time) error {
	if k == nil || k.e == nil || k.e.PrimaryKey == nil {
		return &KeyError{Problem: KeyInvalid, Detail: "no key"}
	}
	fp := k.Fingerprint()
	sig, _ := k.e.PrimarySelfSignature()
	if sig == nil {
		return &KeyError{Fingerprint: fp, Problem: KeyInvalid, Detail: "no valid self-signature"}
	}
	if k.e.Revoked(at) {
		return &KeyError{Fingerprint: fp, Problem: KeyRevoked, Detail: revocationReason(k.e)}
	}
	if at.Before(k.Created()) {
		return &KeyError{Fingerprint: fp, Problem: KeyInvalid,
			Detail: "created in the future (" + k.Created().UTC().Format(time.RFC3339) + "): check the clock of the machine that made it"}
	}
	if k.e.PrimaryKey.KeyExpired(sig, at) {
		return &KeyError{Fingerprint: fp, Problem: KeyExpired,
			Detail: "expired " + k.Expires().UTC().Format(time.RFC3339)}
	}
	if weak, why := weakAlgo(k.e.PrimaryKey); weak {
		return &KeyError{Fingerprint: fp, Problem: KeyWeak, Detail: "primary key " + why}
	}
	enc, ok := k.e.EncryptionKey(at)
	if !ok {
		return &KeyError{Fingerprint: fp, Problem: KeyNoEncryption,
			Detail: "no valid (unexpired, unrevoked) encryption subkey"}
	}
	if weak, why := weakAlgo(enc.PublicKey); weak {
		return &KeyError{Fingerprint: fp, Problem: KeyWeak, Detail: "encryption key " + why}
	}
	return nil
}

func revocationReason(e *openpgp.Entity) string {
	for _, r := range e.Revocations {
		if r.RevocationReasonText != "" {
			return "reason: " + r.RevocationReasonText
		}
	}
	return ""
}

// Key kinds for GenerateKey.
const (
	KindCurve25519 = "curve25519"
	KindRSA4096    = "rsa4096"
	KindRSA3072    = "rsa3072"
)

// GenerateKey creates an unprotected key pair for name <email> of the given
// kind (KindCurve25519 when empty, KindRSA4096, or KindRSA3072) and returns
// the armored private and public key blocks.
func GenerateKey(name, email, kind string) (private, public []byte, err error) {
	k, err := generate(name, email, kind, time.Now(), 0)
	if err != nil {
		return nil, nil, err
	}
	if private, err = k.ArmoredPrivate(); err != nil {
		return nil, nil, err
	}
	if public, err = k.ArmoredPublic(); err != nil {
		return nil, nil, err
	}
	return private, public, nil
}

func generate(name, email, kind string, created time.Time, lifetime time.Duration) (*Key, error) {
	cfg := &packet.Config{
		Time:            func() time.Time { return created },
		DefaultHash:     stdcrypto.SHA512,
		DefaultCipher:   packet.CipherAES256,
		KeyLifetimeSecs: uint32(lifetime / time.Second),
	}
	switch kind {
	case "", KindCurve25519:
		cfg.Algorithm = packet.PubKeyAlgoEdDSA
		cfg.Curve = packet.Curve25519
	case KindRSA4096:
		cfg.Algorithm, cfg.RSABits = packet.PubKeyAlgoRSA, 4096
	case KindRSA3072:
		cfg.Algorithm, cfg.RSABits = packet.PubKeyAlgoRSA, 3072
	default:
		return nil, fmt.Errorf("generate key: unknown kind %q", kind)
	}
	e, err := openpgp.NewEntity(name, "", email, cfg)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return &Key{e: e}, nil
}

func entityList(keys []*Key) openpgp.EntityList {
	el := make(openpgp.EntityList, 0, len(keys))
	for _, k := range keys {
		if k != nil && k.e != nil {
			el = append(el, k.e)
			el = append(el, k.retired...)
		}
	}
	return el
}
