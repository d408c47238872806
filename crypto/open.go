package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/emersion/go-message/textproto"
)

// ErrDecrypt is matched (errors.Is) when encrypted content cannot be
// decrypted: no matching key, or failed integrity protection.
var ErrDecrypt = errors.New("cannot decrypt")

// SigStatus is the outcome of signature verification.
type SigStatus int

// Signature outcomes.
const (
	Unsigned      SigStatus = iota // no signature covers the content
	Good                           // valid signature by a key in the verify keyring
	Bad                            // signature does not verify (wrong content, bad algorithm, malformed)
	UnknownSigner                  // signer not in the verify keyring
	SignerExpired                  // signer's key expired
	SignerRevoked                  // signer's key revoked
)

func (s SigStatus) String() string {
	switch s {
	case Unsigned:
		return "unsigned"
	case Good:
		return "good"
	case Bad:
		return "bad"
	case UnknownSigner:
		return "unknown signer"
	case SignerExpired:
		return "signer expired"
	case SignerRevoked:
		return "signer revoked"
	}
	return "invalid"
}

// Opened is the result of Open.
type Opened struct {
	// Entity is the cleartext MIME entity (header and body, CRLF): the
	// decrypted and/or signed payload, or the whole message when it
	// carries no PGP layer. Inline PGP payloads become a text/plain
	// entity holding only Content-Type and Content-Transfer-Encoding.
	Entity []byte
	// Header is Entity's parsed header.
	Header textproto.Header
	// Encrypted reports that Entity was decrypted.
	Encrypted bool
	// Signature is the verification outcome for Entity.
	Signature SigStatus
	// Signer is the signer's primary key fingerprint, or for an unknown
	// signer the issuer fingerprint or key ID found in the signature.
	Signer string
	// SignedAt is the signature creation time.
	SignedAt time.Time
	// SignatureID identifies the signature itself (signer, hashed
	// metadata, covered data), the same however the message around it
	// is re-encoded; "" when the message is unsigned. Replay records
	// use it.
	SignatureID string
	// Protection is the header protection scheme of Entity: "cipher" or
	// "clear" (RFC 9788 hp=), "v1" (legacy protected-headers), or "".
	// It is only reported inside a PGP layer, and the protected fields
	// are worth what Encrypted and Signature say.
	Protection string
	// Protected holds the protected (non-structural) header fields of
	// Entity when Protection is set.
	Protected textproto.Header
	// HPOuter lists the RFC 9788 HP-Outer records ("Name: value").
	HPOuter []string
	// DroppedParts counts parts outside the cryptographic payload that
	// were left out of Entity (EFAIL-class mixing is never done).
	DroppedParts int
	// Notes explains anything dropped or ignored, without content.
	Notes []string
}

// clockSkew tolerates signatures made by a sender whose clock runs ahead.
const clockSkew = 15 * time.Minute

type opener struct {
	lim *Limits
	dec openpgp.EntityList
	ver openpgp.EntityList
	at  time.Time
	res *Opened
}

func (o *opener) config() *packet.Config {
	at := o.at
	return &packet.Config{Time: func() time.Time { return at }}
}

func (o *opener) note(format string, args ...any) {
	o.res.Notes = append(o.res.Notes, fmt.Sprintf(format, args...))
}

type payloadKind int

const (
	payloadPGPMIMEEncrypted payloadKind = iota + 1
	payloadPGPMIMESigned
	payloadInlineEncrypted
	payloadInlineSigned
)

type payload struct {
	kind payloadKind
	e    *entity
	text []byte // decoded body of an inline payload
}

func (p payload) encrypted() bool {
	return p.kind == payloadPGPMIMEEncrypted || p.kind == payloadInlineEncrypted
}

var (
	beginMessage = []byte("-----BEGIN PGP MESSAGE-----")
	endMessage   = []byte("-----END PGP MESSAGE-----")
	beginSigned  = []byte("-----BEGIN PGP SIGNED MESSAGE-----")
)

// Open parses a received message, decrypts it with decryptKeys, verifies
// its signature against verifyKeys as of time at, and returns the
// cleartext payload. It handles plain mail, PGP/MIME (RFC 3156)
// multipart/encrypted and multipart/signed, signed-inside-encrypted, and
// inline PGP in text/plain. When the message mixes a PGP payload with
// other parts, only the payload (the first encrypted one, else the first
// signed one) is returned and the rest is counted in DroppedParts.
//
// Errors: *LimitError (ErrLimit) for input over lim, ErrDecrypt when
// encrypted content cannot be decrypted, ErrMalformed for broken PGP/MIME.
// A bad or unverifiable signature is not an error: see Opened.Signature.
func Open(raw []byte, decryptKeys, verifyKeys []*Key, at time.Time, lim Limits) (*Opened, error) {
	l := lim.withDefaults()
	if int64(len(raw)) > l.MaxMessageBytes {
		return nil, fmt.Errorf("open: %w", &LimitError{What: "message size", Limit: l.MaxMessageBytes})
	}
	o := &opener{lim: &l, dec: entityList(decryptKeys), ver: entityList(verifyKeys), at: at, res: &Opened{}}
	if err := o.open(toCRLF(raw)); err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	return o.res, nil
}

func (o *opener) open(raw []byte) error {
	var payloads []payload
	leaves := 0
	w := &walker{lim: o.lim}
	err := w.walk(raw, 1, func(e *entity, depth int) (bool, error) {
		t, params := mediaType(e.header)
		switch {
		case t == "multipart/encrypted":
			payloads = append(payloads, payload{kind: payloadPGPMIMEEncrypted, e: e})
			return false, nil
		case t == "multipart/signed" && strings.EqualFold(params["protocol"], "application/pgp-signature"):
			payloads = append(payloads, payload{kind: payloadPGPMIMESigned, e: e})
			return false, nil
		case strings.HasPrefix(t, "multipart/"):
			return true, nil
		case t == "text/plain":
			text, err := decodeBody(e.header, e.body)
			if err == nil {
				if bytes.Contains(text, beginMessage) {
					payloads = append(payloads, payload{kind: payloadInlineEncrypted, e: e, text: text})
					return false, nil
				}
				if bytes.Contains(text, beginSigned) {
					payloads = append(payloads, payload{kind: payloadInlineSigned, e: e, text: text})
					return false, nil
				}
			}
		}
		leaves++
		return false, nil
	})
	if err != nil {
		return err
	}
	if len(payloads) == 0 {
		return o.plain(raw)
	}
	chosen := payloads[0]
	for _, p := range payloads {
		if p.encrypted() {
			chosen = p
			break
		}
	}
	if n := leaves + len(payloads) - 1; n > 0 {
		o.res.DroppedParts += n
		o.note("dropped %d part(s) outside the %s payload", n, map[bool]string{true: "encrypted", false: "signed"}[chosen.encrypted()])
	}
	var root []byte
	switch chosen.kind {
	case payloadPGPMIMEEncrypted:
		root, err = o.pgpmimeEncrypted(chosen.e)
	case payloadPGPMIMESigned:
		err = o.pgpmimeSigned(chosen.e)
	case payloadInlineEncrypted:
		err = o.inlineEncrypted(chosen)
	case payloadInlineSigned:
		err = o.inlineSigned(chosen)
	}
	if err != nil {
		return err
	}
	return o.finish(root)
}

func (o *opener) plain(raw []byte) error {
	e, err := splitEntity(raw, o.lim)
	if err != nil {
		return err
	}
	o.res.Entity, o.res.Header = raw, e.header
	return nil
}

// finish checks the payload's structure and extracts protected headers;
// root is the decrypted entity when the payload is a part of it.
func (o *opener) finish(root []byte) error {
	if err := checkStructure(o.res.Entity, o.lim); err != nil {
		return err
	}
	e, err := splitEntity(o.res.Entity, o.lim)
	if err != nil {
		return err
	}
	o.res.Header = e.header
	if o.protected(e.header) || root == nil {
		return nil
	}
	if re, err := splitEntity(root, o.lim); err == nil {
		o.protected(re.header)
	}
	return nil
}

func (o *opener) protected(h textproto.Header) bool {
	_, params := mediaType(h)
	mode := strings.ToLower(params["hp"])
	switch {
	case mode == "cipher" || mode == "clear":
	case strings.EqualFold(params["protected-headers"], "v1"):
		mode = "v1"
	default:
		return false
	}
	if !o.res.Encrypted && o.res.Signature == Unsigned {
		o.note("header protection %q ignored on a message without PGP protection", mode)
		return false
	}
	if mode == "cipher" && !o.res.Encrypted {
		o.note("hp=\"cipher\" on content that was not encrypted")
	}
	var p textproto.Header
	var outer []string
	fields := h.Fields()
	for fields.Next() {
		k := fields.Key()
		switch {
		case strings.EqualFold(k, "HP-Outer"):
			outer = append(outer, fields.Value())
		case !structural(k):
			raw, err := fields.Raw()
			if err != nil {
				p.Add(k, fields.Value())
				continue
			}
			p.AddRaw(raw)
		}
	}
	o.res.Protection, o.res.Protected, o.res.HPOuter = mode, p, outer
	return true
}

func (o *opener) pgpmimeEncrypted(e *entity) ([]byte, error) {
	_, params := mediaType(e.header)
	parts, err := splitMultipart(e.body, params["boundary"], o.lim.MaxParts)
	if err != nil {
		return nil, fmt.Errorf("multipart/encrypted: %w", err)
	}
	if len(parts) < 2 {
		return nil, fmt.Errorf("%w: multipart/encrypted needs 2 parts, has %d", ErrMalformed, len(parts))
	}
	if len(parts) > 2 {
		o.res.DroppedParts += len(parts) - 2
		o.note("dropped %d extra part(s) of multipart/encrypted", len(parts)-2)
	}
	pe, err := splitEntity(parts[1], o.lim)
	if err != nil {
		return nil, err
	}
	ct, err := decodeBody(pe.header, pe.body)
	if err != nil {
		return nil, err
	}
	plain, err := o.decrypt(ct)
	if err != nil {
		return nil, err
	}
	plain = toCRLF(plain)
	inner, err := splitEntity(plain, o.lim)
	if errors.Is(err, ErrMalformed) {
		o.note("decrypted content is not a MIME entity; wrapped as text/plain")
		o.res.Entity = textEntity(plain, "utf-8")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	o.res.Entity = plain
	t, ip := mediaType(inner.header)
	if t == "multipart/signed" && strings.EqualFold(ip["protocol"], "application/pgp-signature") {
		if o.res.Signature != Unsigned {
			o.note("inner multipart/signed not verified: the encrypted layer is signed")
			return nil, nil
		}
		if err := o.pgpmimeSigned(inner); err != nil {
			return nil, err
		}
		return plain, nil
	}
	return nil, nil
}

func (o *opener) pgpmimeSigned(e *entity) error {
	_, params := mediaType(e.header)
	parts, err := splitMultipart(e.body, params["boundary"], o.lim.MaxParts)
	if err != nil {
		return fmt.Errorf("multipart/signed: %w", err)
	}
	if len(parts) < 2 {
		return fmt.Errorf("%w: multipart/signed needs 2 parts, has %d", ErrMalformed, len(parts))
	}
	if len(parts) > 2 {
		o.res.DroppedParts += len(parts) - 2
		o.note("dropped %d extra part(s) of multipart/signed", len(parts)-2)
	}
	se, err := splitEntity(parts[1], o.lim)
	if err != nil {
		return err
	}
	sig, err := decodeBody(se.header, se.body)
	if err != nil {
		return err
	}
	o.verifyDetached(parts[0], sig)
	o.res.Entity = parts[0]
	return nil
}

func (o *opener) inlineEncrypted(p payload) error {
	start := bytes.Index(p.text, beginMessage)
	end := bytes.Index(p.text[start:], endMessage)
	if end < 0 {
		return fmt.Errorf("%w: inline PGP message without end line", ErrMalformed)
	}
	end += start + len(endMessage)
	o.dropOutside(p.text[:start], p.text[end:])
	plain, err := o.decrypt(p.text[start:end])
	if err != nil {
		return err
	}
	if o.res.Signature == Unsigned && bytes.Contains(plain, beginSigned) {
		return o.clearSigned(plain, charset(p.e))
	}
	o.res.Entity = textEntity(toCRLF(plain), charset(p.e))
	return nil
}

func (o *opener) inlineSigned(p payload) error {
	return o.clearSigned(p.text, charset(p.e))
}

func (o *opener) clearSigned(text []byte, cs string) error {
	start := bytes.Index(text, beginSigned)
	block, rest := clearsign.Decode(text[start:])
	if block == nil {
		return fmt.Errorf("%w: unparsable clear-signed block", ErrMalformed)
	}
	o.dropOutside(text[:start], rest)
	sig, err := io.ReadAll(io.LimitReader(block.ArmoredSignature.Body, 1<<20))
	if err != nil {
		o.setSig(Bad, "", time.Time{})
		o.note("signature unreadable")
	} else {
		o.verifyBinary(block.Bytes, sig)
	}
	o.res.Entity = textEntity(toCRLF(block.Plaintext), cs)
	return nil
}

func (o *opener) dropOutside(before, after []byte) {
	n := 0
	if len(bytes.TrimSpace(before)) > 0 {
		n++
	}
	if len(bytes.TrimSpace(after)) > 0 {
		n++
	}
	if n > 0 {
		o.res.DroppedParts += n
		o.note("dropped %d text block(s) outside the inline PGP block", n)
	}
}

func charset(e *entity) string {
	_, params := mediaType(e.header)
	if cs := params["charset"]; cs != "" {
		return cs
	}
	return "utf-8"
}

func textEntity(body []byte, cs string) []byte {
	if strings.ContainsFunc(cs, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r == ':' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
	}) {
		cs = "utf-8"
	}
	var buf bytes.Buffer
	buf.Grow(len(body) + 80)
	fmt.Fprintf(&buf, "Content-Type: text/plain; charset=\"%s\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", cs)
	buf.Write(body)
	return buf.Bytes()
}

// decrypt decrypts an armored or binary OpenPGP message and records the
// signature status of a signed one.
func (o *opener) decrypt(ct []byte) ([]byte, error) {
	var r io.Reader = bytes.NewReader(ct)
	if i := bytes.Index(ct, beginMessage); i >= 0 {
		block, err := armor.Decode(bytes.NewReader(ct[i:]))
		if err != nil {
			return nil, fmt.Errorf("%w: armor: %v", ErrMalformed, err)
		}
		r = block.Body
	}
	max, limErr := o.lim.plaintextCap(len(ct))
	cfg := o.config()
	// go-crypto's own limit counts packet framing too: keep it as a
	// backstop above ours so ours reports the overflow.
	guard := max + 1<<20
	cfg.MaxDecompressedMessageSize = &guard
	md, err := openpgp.ReadMessage(r, splitRing{dec: o.dec, ver: o.ver}, nil, cfg)
	if err != nil {
		if errors.Is(err, pgperrors.ErrKeyIncorrect) {
			return nil, fmt.Errorf("decrypt: %w: no matching secret key", ErrDecrypt)
		}
		return nil, fmt.Errorf("decrypt: %w: %v", ErrDecrypt, err)
	}
	// Unless compressed, the plaintext is smaller than the ciphertext.
	plain, err := readCappedSized(md.UnverifiedBody, max, limErr, len(ct)*3/4)
	if err != nil {
		var le *LimitError
		if errors.As(err, &le) {
			return nil, fmt.Errorf("decrypt: %w", err)
		}
		return nil, fmt.Errorf("decrypt: %w: %v", ErrDecrypt, err)
	}
	o.res.Encrypted = md.IsEncrypted
	if !md.IsEncrypted {
		o.note("PGP message was signed but not encrypted")
	}
	o.classifyMessage(md)
	if md.IsSigned {
		sig := md.Signature
		if sig == nil {
			for _, s := range md.UnverifiedSignatures {
				if s.IssuerKeyId != nil && *s.IssuerKeyId == md.SignedByKeyId {
					sig = s
				}
			}
		}
		o.res.SignatureID = signatureID(o.res.Signer, sig, plain)
	}
	return plain, nil
}

func (o *opener) classifyMessage(md *openpgp.MessageDetails) {
	switch {
	case !md.IsSigned:
		return
	case md.SignedBy == nil:
		id := fmt.Sprintf("%016X", md.SignedByKeyId)
		var at time.Time
		for _, s := range md.UnverifiedSignatures {
			if s.IssuerKeyId != nil && *s.IssuerKeyId == md.SignedByKeyId {
				at = s.CreationTime
				if len(s.IssuerFingerprint) > 0 {
					id = fmt.Sprintf("%X", s.IssuerFingerprint)
				}
			}
		}
		o.setSig(UnknownSigner, id, at)
	default:
		var at time.Time
		if md.Signature != nil {
			at = md.Signature.CreationTime
		}
		o.setSig(o.status(md.SignatureError, md.Signature, md.SignedBy), fingerprint(md.SignedBy.Entity), at)
	}
}

// verifyDetached verifies an armored or binary detached signature over
// signed.
func (o *opener) verifyDetached(signed, sig []byte) {
	bin := sig
	if i := bytes.Index(sig, []byte("-----BEGIN PGP ")); i >= 0 {
		block, err := armor.Decode(bytes.NewReader(sig[i:]))
		if err != nil {
			o.setSig(Bad, "", time.Time{})
			o.note("signature armor unreadable")
			return
		}
		if bin, err = io.ReadAll(io.LimitReader(block.Body, 1<<20)); err != nil {
			o.setSig(Bad, "", time.Time{})
			o.note("signature armor unreadable")
			return
		}
	}
	o.verifyBinary(signed, bin)
}

func (o *opener) verifyBinary(signed, sig []byte) {
	issuer, created := "", time.Time{}
	if p, err := packet.Read(bytes.NewReader(sig)); err == nil {
		if s, ok := p.(*packet.Signature); ok {
			created = s.CreationTime
			switch {
			case len(s.IssuerFingerprint) > 0:
				issuer = fmt.Sprintf("%X", s.IssuerFingerprint)
			case s.IssuerKeyId != nil:
				issuer = fmt.Sprintf("%016X", *s.IssuerKeyId)
			}
		}
	}
	s, signer, err := openpgp.VerifyDetachedSignature(o.ver, bytes.NewReader(signed), bytes.NewReader(sig), o.config())
	defer func() {
		if s == nil {
			if p, err := packet.Read(bytes.NewReader(sig)); err == nil {
				s, _ = p.(*packet.Signature)
			}
		}
		o.res.SignatureID = signatureID(o.res.Signer, s, signed)
	}()
	switch {
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		o.setSig(UnknownSigner, issuer, created)
	case signer == nil:
		o.setSig(Bad, issuer, created)
	default:
		var key *openpgp.Key
		if s != nil && s.IssuerKeyId != nil {
			el := openpgp.EntityList{signer}
			if keys := el.KeysByIdUsage(*s.IssuerKeyId, packet.KeyFlagSign); len(keys) > 0 {
				key = &keys[0]
			}
		}
		o.setSig(o.status(err, s, key), fingerprint(signer), created)
	}
}

// status maps a go-crypto verification error to a SigStatus.
func (o *opener) status(err error, sig *packet.Signature, key *openpgp.Key) SigStatus {
	switch {
	case err == nil && sig != nil:
		return Good
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return SignerRevoked
	case errors.Is(err, pgperrors.ErrKeyExpired):
		return SignerExpired
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return UnknownSigner
	case errors.Is(err, pgperrors.ErrSignatureExpired) && o.freshEnough(sig, key):
		return Good
	}
	return Bad
}

// freshEnough accepts a signature go-crypto called expired only because it
// was created up to clockSkew after o.at. Key revocation and expiry were
// checked before signature expiry, so they already passed.
func (o *opener) freshEnough(sig *packet.Signature, key *openpgp.Key) bool {
	if sig == nil || key == nil {
		return false
	}
	later := o.at.Add(clockSkew)
	primary, _ := key.Entity.PrimarySelfSignature()
	check := []*packet.Signature{sig, primary}
	if key.PublicKey != key.Entity.PrimaryKey {
		check = append(check, key.SelfSignature)
		if key.SelfSignature != nil {
			check = append(check, key.SelfSignature.EmbeddedSignature)
		}
	}
	for _, s := range check {
		if s == nil {
			continue
		}
		if s.SigExpired(later) {
			return false
		}
		if s.SigLifetimeSecs != nil && *s.SigLifetimeSecs != 0 &&
			o.at.After(s.CreationTime.Add(time.Duration(*s.SigLifetimeSecs)*time.Second)) {
			return false
		}
	}
	return true
}

func (o *opener) setSig(s SigStatus, signer string, at time.Time) {
	o.res.Signature, o.res.Signer, o.res.SignedAt, o.res.SignatureID = s, signer, at, ""
}

func fingerprint(e *openpgp.Entity) string {
	return fmt.Sprintf("%X", e.PrimaryKey.Fingerprint)
}

// splitRing decrypts with one keyring and verifies with another, so a
// decryption key is never taken as a trusted signer.
type splitRing struct {
	dec, ver openpgp.EntityList
}

func (r splitRing) KeysById(id uint64) []openpgp.Key { return r.dec.KeysById(id) }

func (r splitRing) KeysByIdUsage(id uint64, usage byte) []openpgp.Key {
	if usage&packet.KeyFlagSign != 0 {
		return r.ver.KeysByIdUsage(id, usage)
	}
	return r.dec.KeysByIdUsage(id, usage)
}

func (r splitRing) DecryptionKeys() []openpgp.Key { return r.dec.DecryptionKeys() }
