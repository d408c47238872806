package ops

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/crypto"
)

// The project key file (pgp.key_file) holds the current key first, then
// the retired ones, each with its secret key: cvd signs with the first
// and opens mail made for any. The public file (pgp.public_file) holds
// the current public key, then every revoked retired key with its
// revocation, as the site publishes them.

// LoadProjectKey reads pgp.key_file: the current key, able to open mail
// made for the retired keys that follow it.
func LoadProjectKey(c *config.Config) (*crypto.Key, error) {
	b, err := os.ReadFile(c.PGP.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%s: pgp.key_file: %w", c.File, err)
	}
	keys, err := crypto.ParseKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%s: pgp.key_file %s: %w", c.File, c.PGP.KeyFile, err)
	}
	for i, k := range keys {
		if !k.HasPrivate() {
			return nil, fmt.Errorf("%s: pgp.key_file %s: key %d (%s) holds no private key", c.File, c.PGP.KeyFile, i+1, k.Fingerprint())
		}
	}
	return keys[0].WithRetired(keys[1:]), nil
}

// RotateProjectKey replaces the project key by a new one certified by it
// (created at at); the old key is kept, retired, to open mail sent to it.
// It rewrites pgp.key_file and pgp.public_file and returns both keys.
func RotateProjectKey(c *config.Config, at time.Time) (old, next *crypto.Key, err error) {
	cur, err := LoadProjectKey(c)
	if err != nil {
		return nil, nil, err
	}
	if err := crypto.CheckUsable(cur, at); err != nil {
		return nil, nil, fmt.Errorf("rotate the project key: the current key cannot certify its successor: %w", err)
	}
	next, err = crypto.Rotate(cur, at)
	if err != nil {
		return nil, nil, err
	}
	retired := append([]*crypto.Key{cur.WithRetired(nil)}, cur.Retired()...)
	if err := writeProjectKeys(c, next, retired, at); err != nil {
		return nil, nil, err
	}
	return cur, next, nil
}

// RevokeProjectKey revokes the retired project key with fingerprint fpr,
// with reason (a compromised key says so). The key stays in
// pgp.key_file to open old mail; pgp.public_file and the site publish it
// with its revocation. The current key cannot be revoked: rotate first.
func RevokeProjectKey(c *config.Config, fpr, reason string, compromised bool, at time.Time) (*crypto.Key, error) {
	cur, err := LoadProjectKey(c)
	if err != nil {
		return nil, err
	}
	fpr = strings.ToUpper(strings.ReplaceAll(fpr, " ", ""))
	if cur.Fingerprint() == fpr {
		return nil, fmt.Errorf("revoke %s: it is the current project key; run 'cvd key rotate' first (the new key takes over), then revoke this one", fpr)
	}
	retired := cur.Retired()
	var target *crypto.Key
	for _, k := range retired {
		if k.Fingerprint() == fpr {
			target = k
		}
	}
	if target == nil {
		return nil, fmt.Errorf("revoke %s: no retired project key has this fingerprint ('cvd key list' shows them)", fpr)
	}
	if target.Revoked(at) {
		return nil, fmt.Errorf("revoke %s: already revoked", fpr)
	}
	if err := crypto.Revoke(target, reason, compromised, at); err != nil {
		return nil, err
	}
	if err := writeProjectKeys(c, cur, retired, at); err != nil {
		return nil, err
	}
	return target, nil
}

// PublishedKeys returns the armored public keys the site publishes for
// the project's addresses: the current key, then the revoked retired
// ones (their revocation certificates).
func PublishedKeys(k *crypto.Key, at time.Time) ([][]byte, error) {
	pub, err := k.ArmoredPublic()
	if err != nil {
		return nil, fmt.Errorf("project key: %w", err)
	}
	out := [][]byte{pub}
	for _, r := range k.Retired() {
		if !r.Revoked(at) {
			continue
		}
		b, err := r.ArmoredPublic()
		if err != nil {
			return nil, fmt.Errorf("retired key %s: %w", r.Fingerprint(), err)
		}
		out = append(out, b)
	}
	return out, nil
}

func writeProjectKeys(c *config.Config, cur *crypto.Key, retired []*crypto.Key, at time.Time) error {
	var priv bytes.Buffer
	for _, k := range append([]*crypto.Key{cur}, retired...) {
		b, err := k.ArmoredPrivate()
		if err != nil {
			return fmt.Errorf("write %s: %w", c.PGP.KeyFile, err)
		}
		priv.Write(b)
	}
	pubs, err := PublishedKeys(cur.WithRetired(retired), at)
	if err != nil {
		return err
	}
	if err := WriteFile(c.PGP.KeyFile, priv.Bytes(), 0o600, true); err != nil {
		return err
	}
	return WriteFile(c.PGP.PublicFile, bytes.Join(pubs, nil), 0o644, true)
}
