package crypto

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
)

// Found is a key proposed by Discover. Discovery only proposes: whether a
// key is pinned for an address is policy decided elsewhere.
type Found struct {
	Key *Key // public part only
	// Source is "autocrypt", "attachment" or "inline".
	Source string
	// Addr is the Autocrypt addr= attribute (lower-cased), if any.
	Addr string
}

var (
	beginPublicKey = []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")
	endPublicKey   = []byte("-----END PGP PUBLIC KEY BLOCK-----")
)

// Discover finds public keys in a raw message: Autocrypt header keydata,
// application/pgp-keys parts, and armored public key blocks in text parts.
// Keys that fail to parse are skipped; each fingerprint is returned once.
// For an encrypted message, call it again on Opened.Entity to find keys
// inside the encryption.
func Discover(raw []byte, lim Limits) ([]Found, error) {
	l := lim.withDefaults()
	if int64(len(raw)) > l.MaxMessageBytes {
		return nil, fmt.Errorf("discover: %w", &LimitError{What: "message size", Limit: l.MaxMessageBytes})
	}
	raw = toCRLF(raw)
	var found []Found
	seen := map[string]bool{}
	add := func(keys []*Key, source, addr string) {
		for _, k := range keys {
			fp := k.Fingerprint()
			if seen[fp] {
				continue
			}
			seen[fp] = true
			found = append(found, Found{Key: k.Public(), Source: source, Addr: addr})
		}
	}
	w := &walker{lim: &l}
	err := w.walk(raw, 1, func(e *entity, depth int) (bool, error) {
		if depth == 1 {
			for _, v := range e.header.Values("Autocrypt") {
				addr, keydata := parseAutocrypt(v)
				if keydata == nil {
					continue
				}
				if keys, err := ParseKeys(keydata); err == nil {
					add(keys, "autocrypt", addr)
				}
			}
		}
		t, _ := mediaType(e.header)
		switch {
		case strings.HasPrefix(t, "multipart/"):
			return true, nil
		case t == "application/pgp-keys":
			body, err := decodeBody(e.header, e.body)
			if err != nil {
				return false, nil
			}
			if keys, err := ParseKeys(body); err == nil {
				add(keys, "attachment", "")
			} else {
				add(armoredKeys(body), "attachment", "")
			}
		case strings.HasPrefix(t, "text/"):
			body, err := decodeBody(e.header, e.body)
			if err != nil {
				return false, nil
			}
			add(armoredKeys(body), "inline", "")
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("discover: %w", err)
	}
	return found, nil
}

// parseAutocrypt returns the addr and decoded keydata of an Autocrypt
// header value (Autocrypt Level 1 §2.1); keydata is nil when absent.
func parseAutocrypt(v string) (addr string, keydata []byte) {
	for _, attr := range strings.Split(v, ";") {
		name, value, ok := strings.Cut(strings.TrimSpace(attr), "=")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "addr":
			addr = strings.ToLower(strings.TrimSpace(value))
		case "keydata":
			b, err := base64.StdEncoding.DecodeString(string(stripSpace([]byte(value))))
			if err == nil && len(b) > 0 {
				keydata = b
			}
		}
	}
	return addr, keydata
}

// armoredKeys parses every armored public key block in text.
func armoredKeys(text []byte) []*Key {
	var keys []*Key
	for {
		i := bytes.Index(text, beginPublicKey)
		if i < 0 {
			return keys
		}
		j := bytes.Index(text[i:], endPublicKey)
		if j < 0 {
			return keys
		}
		end := i + j + len(endPublicKey)
		if ks, err := ParseKeys(text[i:end]); err == nil {
			keys = append(keys, ks...)
		}
		text = text[end:]
	}
}
