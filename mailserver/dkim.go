package mailserver

import (
	"bytes"
	stdcrypto "crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// DefaultDKIMHeaders are the header fields signed when the configuration
// names none: what a reader sees and what a list adds (RFC 6376 5.4.1).
// A field absent from a message is still listed, so that adding it later
// breaks the signature.
var DefaultDKIMHeaders = []string{
	"From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", "List-Id", "List-Unsubscribe",
	"List-Unsubscribe-Post", "List-Post", "List-Help", "List-Subscribe",
	"Auto-Submitted", "Precedence",
}

// DKIMKey is one signing key and the selector its public key is published
// under (SELECTOR._domainkey.DOMAIN).
type DKIMKey struct {
	Selector string
	Signer   stdcrypto.Signer
}

// DKIMSigner adds a DKIM-Signature (RFC 6376) per key to a message, with
// d= the mail domain.
type DKIMSigner struct {
	domain  string
	keys    []DKIMKey
	headers []string
}

// NewDKIMSigner signs for domain with keys (RSA or Ed25519, RFC 8463),
// covering headers (DefaultDKIMHeaders when empty).
func NewDKIMSigner(domain string, keys []DKIMKey, headers []string) (*DKIMSigner, error) {
	if len(keys) == 0 {
		return nil, errors.New("dkim: no signing key")
	}
	if len(headers) == 0 {
		headers = DefaultDKIMHeaders
	}
	for _, k := range keys {
		switch k.Signer.(type) {
		case *rsa.PrivateKey, ed25519.PrivateKey:
		default:
			return nil, fmt.Errorf("dkim: selector %s: key type %T is neither RSA nor Ed25519", k.Selector, k.Signer)
		}
	}
	return &DKIMSigner{domain: domain, keys: keys, headers: headers}, nil
}

// Sign returns raw with one DKIM-Signature field per key prepended.
// The signatures are independent (none covers another), so a verifier
// that knows only one algorithm still finds its own.
func (s *DKIMSigner) Sign(raw []byte) ([]byte, error) {
	fields, err := s.Fields(raw)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(fields)+len(raw))
	return append(append(out, fields...), raw...), nil
}

// Fields returns the DKIM-Signature fields Sign prepends to raw, so that
// a large message need not be copied to sign it.
func (s *DKIMSigner) Fields(raw []byte) ([]byte, error) {
	return s.FieldsFrom(func(write func([]byte) error) error { return write(raw) })
}

// FieldsFrom is Fields for a message that each gives piece by piece (by
// calling write), read once for all keys. An error of each is returned
// as it is.
func (s *DKIMSigner) FieldsFrom(each func(write func([]byte) error) error) ([]byte, error) {
	signers := make([]*dkim.Signer, len(s.keys))
	closeAll := func() {
		for _, sg := range signers {
			if sg != nil {
				sg.Close()
			}
		}
	}
	for i, k := range s.keys {
		sg, err := dkim.NewSigner(&dkim.SignOptions{
			Domain:                 s.domain,
			Selector:               k.Selector,
			Signer:                 k.Signer,
			Hash:                   stdcrypto.SHA256,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             s.headers,
		})
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("dkim: selector %s: %w", k.Selector, err)
		}
		signers[i] = sg
	}
	err := each(func(p []byte) error {
		for i, sg := range signers {
			if _, err := sg.Write(p); err != nil {
				return fmt.Errorf("dkim: selector %s: %w", s.keys[i].Selector, err)
			}
		}
		return nil
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	var out []byte
	for i, sg := range signers {
		signers[i] = nil
		if err := sg.Close(); err != nil {
			closeAll()
			return nil, fmt.Errorf("dkim: selector %s: %w", s.keys[i].Selector, err)
		}
		out = append(out, sg.Signature()...)
	}
	return out, nil
}

// GenerateDKIMKey makes a new signing key, "rsa" (2048 bits) or "ed25519",
// as a PKCS #8 PEM block.
func GenerateDKIMKey(kind string) ([]byte, error) {
	var key any
	var err error
	switch kind {
	case "rsa":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("dkim: key kind %q: use rsa or ed25519", kind)
	}
	if err != nil {
		return nil, fmt.Errorf("dkim: generate %s key: %w", kind, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("dkim: encode %s key: %w", kind, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// LoadDKIMKey reads a PEM private key (PKCS #8, or PKCS #1 for RSA).
func LoadDKIMKey(path string) (stdcrypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	return ParseDKIMKey(data)
}

// ParseDKIMKey parses a PEM private key (PKCS #8, or PKCS #1 for RSA).
func ParseDKIMKey(data []byte) (stdcrypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("dkim: no PEM private key")
	}
	if b.Type == "RSA PRIVATE KEY" {
		k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("dkim: %w", err)
		}
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 1024 {
			return nil, fmt.Errorf("dkim: RSA key of %d bits is too short; use 2048", k.N.BitLen())
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("dkim: key type %T is neither RSA nor Ed25519", k)
}

// DKIMRecord is the TXT record value publishing signer's public key
// (RFC 6376 3.6.1; RFC 8463 for Ed25519).
func DKIMRecord(signer stdcrypto.Signer) (string, error) {
	switch pub := signer.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", fmt.Errorf("dkim: %w", err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub), nil
	}
	return "", fmt.Errorf("dkim: key type %T is neither RSA nor Ed25519", signer)
}

// SplitTXT cuts a TXT value into the 255-byte strings DNS allows, quoted
// for a zone file.
func SplitTXT(v string) string {
	var parts []string
	for len(v) > 255 {
		parts = append(parts, v[:255])
		v = v[255:]
	}
	parts = append(parts, v)
	var b bytes.Buffer
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(`"` + strings.ReplaceAll(p, `"`, `\"`) + `"`)
	}
	return b.String()
}
