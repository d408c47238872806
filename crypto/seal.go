package crypto

import (
	"bytes"
	stdcrypto "crypto"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/emersion/go-message/textproto"
)

// ObscuredSubject is the outer Subject of every sealed message (RFC 9788
// hcp_baseline).
const ObscuredSubject = "[...]"

// sealHash is the signature hash; SHA-512 is the fastest SHA-2 on 64-bit
// machines and every OpenPGP implementation has it.
const sealHash = stdcrypto.SHA512

// Seal encrypts the MIME entity inner (header with the real Subject, and
// body) to one recipient and signs it with signer: see SealFanout.
func Seal(inner []byte, outer textproto.Header, signer, to *Key, at time.Time) ([]byte, error) {
	out, err := SealFanout(inner, outer, signer, []*Key{to}, at)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// SealFanout produces one RFC 3156 multipart/encrypted message per
// recipient, in the order of to. The inner entity gets RFC 9788 header
// protection: the outer fields missing from it are copied in, its
// Content-Type gains hp="cipher" (and legacy protected-headers="v1"), and
// each outer field is recorded as HP-Outer. It is signed once by signer
// (a one-pass signature inside the encryption, so `gpg --decrypt` reports
// it) and encrypted to each recipient separately: every copy holds exactly
// one public-key encrypted session key packet, naming only its recipient.
// The outer header is outer with Subject replaced by "[...]" and the
// structural fields set; it is shared by all copies, so it must not be
// personalised (To: is the list address).
//
// All copies share one session key: see the package documentation. Every
// recipient must pass CheckUsable at time at, or a *KeyError names the
// first that does not. Work is spread over GOMAXPROCS goroutines.
func SealFanout(inner []byte, outer textproto.Header, signer *Key, to []*Key, at time.Time) ([][]byte, error) {
	return sealFanout(inner, outer, signer, to, at, true, ObscuredSubject)
}

// SealFanoutSubject is SealFanout with outerSubject as the outer Subject
// instead of "[...]": a neutral text a receiving list requires (e.g. the
// distros list's "[vs]" prefix). The real Subject stays inside.
func SealFanoutSubject(inner []byte, outer textproto.Header, signer *Key, to []*Key, at time.Time, outerSubject string) ([][]byte, error) {
	if strings.ContainsAny(outerSubject, "\r\n") || strings.TrimSpace(outerSubject) == "" {
		return nil, errors.New("seal: the outer Subject must be one non-empty line")
	}
	return sealFanout(inner, outer, signer, to, at, true, outerSubject)
}

// sealer is the part of a fan-out common to all copies: recipients'
// keys, the signed inner entity and the MIME text around the armor.
type sealer struct {
	encKeys []*packet.PublicKey
	cipher  packet.CipherFunction
	cfg     *packet.Config
	// sign writes the signed protected entity (OpenPGP packets) to w;
	// size is the entity's length.
	sign   func(w io.Writer) error
	size   int
	prefix []byte
	suffix string
}

func newSealer(inner []byte, outer textproto.Header, signer *Key, to []*Key, at time.Time, outerSubject string) (*sealer, error) {
	return newSealerParts(inner, nil, outer, signer, to, at, outerSubject)
}

// newSealerParts is newSealer for the entity inner||rest..., where inner
// holds the whole header: the rest is signed as it is (with CRLF line
// ends), never copied into one buffer with inner.
func newSealerParts(inner []byte, rest [][]byte, outer textproto.Header, signer *Key, to []*Key, at time.Time, outerSubject string) (*sealer, error) {
	if len(to) == 0 {
		return nil, errors.New("seal: no recipients")
	}
	if err := checkSigner(signer); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	s := &sealer{encKeys: make([]*packet.PublicKey, len(to)), cipher: packet.CipherAES256}
	for i, k := range to {
		if err := CheckUsable(k, at); err != nil {
			return nil, fmt.Errorf("seal: recipient: %w", err)
		}
		ek, _ := k.e.EncryptionKey(at)
		s.encKeys[i] = ek.PublicKey
		if preferredCipher(k.e) == packet.CipherAES128 {
			s.cipher = packet.CipherAES128
		}
	}
	s.cfg = &packet.Config{Time: func() time.Time { return at }, DefaultHash: sealHash, DefaultCipher: s.cipher}

	head, body, outerH, err := protectHeaders(inner, outer, outerSubject)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	parts := [][]byte{head, body}
	last := byte(0)
	if n := len(inner); n > 0 {
		last = inner[n-1]
	}
	for _, r := range rest {
		if len(r) == 0 {
			continue
		}
		r = toCRLFAfter(last, r)
		parts = append(parts, r)
		last = r[len(r)-1]
	}
	s.sign = func(w io.Writer) error {
		sw, err := openpgp.Sign(w, signer.e, &openpgp.FileHints{IsBinary: true}, s.cfg)
		if err != nil {
			return fmt.Errorf("seal: sign: %w", err)
		}
		for _, p := range parts {
			if err := writeChunks(sw, p); err != nil {
				return fmt.Errorf("seal: sign: %w", err)
			}
		}
		if err := sw.Close(); err != nil {
			return fmt.Errorf("seal: sign: %w", err)
		}
		return nil
	}
	for _, p := range parts {
		s.size += len(p)
	}

	boundary := randomBoundary()
	outerH.Set("MIME-Version", "1.0")
	outerH.Del("Content-Type")
	outerH.AddRaw(foldField("Content-Type", formatMediaType("multipart/encrypted",
		map[string]string{"protocol": "application/pgp-encrypted", "boundary": boundary})))
	ohead, err := headerBytes(outerH)
	if err != nil {
		return nil, fmt.Errorf("seal: outer header: %w", err)
	}
	s.prefix = append(ohead, "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"+
		"--"+boundary+"\r\n"+
		"Content-Type: application/pgp-encrypted\r\n"+
		"Content-Description: PGP/MIME version identification\r\n"+
		"\r\n"+
		"Version: 1\r\n"+
		"\r\n"+
		"--"+boundary+"\r\n"+
		"Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n"+
		"Content-Description: OpenPGP encrypted message\r\n"+
		"Content-Disposition: inline; filename=\"encrypted.asc\"\r\n"+
		"\r\n"...)
	s.suffix = "\r\n--" + boundary + "--\r\n"
	return s, nil
}

// encryptShared signs and encrypts the protected entity once under a
// new session key, streaming from one to the other.
func (s *sealer) encryptShared() (sessionKey, data []byte, err error) {
	var buf bytes.Buffer
	buf.Grow(s.size + 1024)
	if sessionKey, err = s.encryptSharedTo(&buf); err != nil {
		return nil, nil, err
	}
	return sessionKey, buf.Bytes(), nil
}

// encryptSharedTo is encryptShared appending the data to buf.
func (s *sealer) encryptSharedTo(buf io.Writer) (sessionKey []byte, err error) {
	sessionKey = make([]byte, s.cipher.KeySize())
	if _, err := rand.Read(sessionKey); err != nil {
		return nil, fmt.Errorf("seal: session key: %w", err)
	}
	w, err := packet.SerializeSymmetricallyEncrypted(buf, s.cipher, false, packet.CipherSuite{}, sessionKey, s.cfg)
	if err != nil {
		return nil, fmt.Errorf("seal: encrypt: %w", err)
	}
	if err := s.sign(w); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("seal: encrypt: %w", err)
	}
	return sessionKey, nil
}

// signed returns the signed protected entity.
func (s *sealer) signed() ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(s.size + 512)
	if err := s.sign(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func sealFanout(inner []byte, outer textproto.Header, signer *Key, to []*Key, at time.Time, shareKey bool, outerSubject string) ([][]byte, error) {
	s, err := newSealer(inner, outer, signer, to, at, outerSubject)
	if err != nil {
		return nil, err
	}
	cipher, cfg, prefix, suffix := s.cipher, s.cfg, s.prefix, s.suffix

	var sessionKey, signed []byte
	var shared *sharedTail
	if !shareKey {
		if signed, err = s.signed(); err != nil {
			return nil, err
		}
	} else {
		var data []byte
		if sessionKey, data, err = s.encryptShared(); err != nil {
			return nil, err
		}
		shared = newSharedTail(data)
	}

	out := make([][]byte, len(to))
	errs := make([]error, len(to))
	work := func(i int, bin *bytes.Buffer) {
		bin.Reset()
		var scratch [512]byte
		sk := sessionKey
		if sk == nil {
			sk = make([]byte, cipher.KeySize())
			if _, err := rand.Read(sk); err != nil {
				errs[i] = err
				return
			}
		}
		if err := packet.SerializeEncryptedKeyAEAD(bin, s.encKeys[i], cipher, false, sk, cfg); err != nil {
			errs[i] = fmt.Errorf("seal: encrypt session key to %s: %w", to[i].Fingerprint(), err)
			return
		}
		var msg []byte
		if shared != nil {
			msg = make([]byte, 0, len(prefix)+armoredLen(bin.Len()+len(shared.data))+len(suffix))
			msg = append(msg, prefix...)
			msg = appendArmorShared(msg, "PGP MESSAGE", bin.Bytes(), shared, scratch[:0])
		} else {
			d, err := encryptData(signed, cipher, sk, cfg)
			if err != nil {
				errs[i] = fmt.Errorf("seal: %w", err)
				return
			}
			bin.Write(d)
			msg = make([]byte, 0, len(prefix)+armoredLen(bin.Len())+len(suffix))
			msg = append(msg, prefix...)
			msg = appendArmor(msg, "PGP MESSAGE", bin.Bytes())
		}
		out[i] = append(msg, suffix...)
	}
	parallel(len(to), work)
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parallel runs work(i) for i in [0,n) on at most GOMAXPROCS goroutines,
// each with its own scratch buffer.
func parallel(n int, work func(i int, scratch *bytes.Buffer)) {
	workers := runtime.GOMAXPROCS(0)
	if workers > n {
		workers = n
	}
	if workers <= 1 {
		var buf bytes.Buffer
		for i := 0; i < n; i++ {
			work(i, &buf)
		}
		return
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			for i := range next {
				work(i, &buf)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

func encryptData(plain []byte, cipher packet.CipherFunction, key []byte, cfg *packet.Config) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(plain) + 64)
	w, err := packet.SerializeSymmetricallyEncrypted(&buf, cipher, false, packet.CipherSuite{}, key, cfg)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if err := writeChunks(w, plain); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	return buf.Bytes(), nil
}

// writeChunks writes b to w in pieces, as the OpenPGP writers allocate
// a buffer the size of each write.
func writeChunks(w io.Writer, b []byte) error {
	for len(b) > 0 {
		n := min(len(b), 64<<10)
		if _, err := w.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func preferredCipher(e *openpgp.Entity) packet.CipherFunction {
	sig, _ := e.PrimarySelfSignature()
	if sig == nil || len(sig.PreferredSymmetric) == 0 {
		return packet.CipherAES256
	}
	for _, c := range sig.PreferredSymmetric {
		if packet.CipherFunction(c) == packet.CipherAES256 {
			return packet.CipherAES256
		}
	}
	return packet.CipherAES128
}

func checkSigner(k *Key) error {
	if k == nil || k.e == nil {
		return errors.New("no signing key")
	}
	if !k.HasPrivate() {
		return fmt.Errorf("signing key %s has no secret key material", k.Fingerprint())
	}
	if k.e.PrivateKey.Encrypted {
		return fmt.Errorf("signing key %s is locked", k.Fingerprint())
	}
	return nil
}

// protectHeaders applies RFC 9788 header protection for an encrypted
// message: it returns the inner entity to encrypt (its new header, and
// its body, part of inner) and the outer header.
func protectHeaders(inner []byte, outer textproto.Header, outerSubject string) (head, body []byte, _ textproto.Header, _ error) {
	lim := DefaultLimits()
	ie, err := splitEntity(toCRLF(inner), &lim)
	if err != nil {
		return nil, nil, textproto.Header{}, fmt.Errorf("inner entity: %w", err)
	}
	h := ie.header.Copy()
	h.Del("HP-Outer")
	copyMissing(&h, outer)

	oh := nonStructural(outer)
	oh.Set("Subject", outerSubject)
	fields := oh.Fields()
	var hpOuter []string
	for fields.Next() {
		hpOuter = append(hpOuter, fields.Key()+": "+fields.Value())
	}
	for i := len(hpOuter) - 1; i >= 0; i-- {
		h.AddRaw(foldField("HP-Outer", hpOuter[i]))
	}
	if err := setHP(&h, "cipher"); err != nil {
		return nil, nil, textproto.Header{}, err
	}
	head, err = headerBytes(h)
	if err != nil {
		return nil, nil, textproto.Header{}, fmt.Errorf("inner header: %w", err)
	}
	return head, ie.body, oh, nil
}

// copyMissing copies the non-structural fields of outer absent from h.
func copyMissing(h *textproto.Header, outer textproto.Header) {
	fields := outer.Fields()
	var add [][]byte
	for fields.Next() {
		if structural(fields.Key()) || h.Has(fields.Key()) {
			continue
		}
		raw, err := fields.Raw()
		if err != nil {
			raw = []byte(fields.Key() + ": " + fields.Value() + "\r\n")
		}
		add = append(add, append([]byte(nil), raw...))
	}
	for _, raw := range add {
		h.AddRaw(raw)
	}
}

func nonStructural(h textproto.Header) textproto.Header {
	out := h.Copy()
	fields := out.Fields()
	for fields.Next() {
		if structural(fields.Key()) {
			fields.Del()
		}
	}
	return out
}

// setHP adds the header protection parameters to h's Content-Type.
func setHP(h *textproto.Header, mode string) error {
	t, params := mediaType(*h)
	if h.Get("Content-Type") == "" {
		params["charset"] = "us-ascii"
	}
	params["hp"] = mode
	if mode == "cipher" {
		params["protected-headers"] = "v1"
	}
	ct := formatMediaType(t, params)
	if ct == "" {
		return fmt.Errorf("inner Content-Type %q cannot carry hp=", t)
	}
	h.Del("Content-Type")
	h.AddRaw(foldField("Content-Type", ct))
	return nil
}

// formatMediaType is mime.FormatMediaType with every parameter value
// quoted, as RFC 3156 and RFC 9788 write them (some readers match
// hp="cipher" literally).
func formatMediaType(t string, params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k, v := range params {
		for _, r := range v {
			if r >= 0x80 || r < 0x20 {
				return mime.FormatMediaType(t, params)
			}
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if mime.FormatMediaType(t, nil) == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString(t)
	for _, k := range keys {
		if mime.FormatMediaType(t, map[string]string{k: "x"}) == "" {
			return ""
		}
		v := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(params[k])
		b.WriteString("; " + k + `="` + v + `"`)
	}
	return b.String()
}

// foldField formats a header field, folding at spaces to keep lines
// under 78 characters where possible.
func foldField(name, value string) []byte {
	var b strings.Builder
	b.WriteString(name + ":")
	col := len(name) + 1
	for i, w := range strings.Split(value, " ") {
		if i > 0 && col+1+len(w) > 76 {
			b.WriteString("\r\n")
			col = 0
		}
		b.WriteString(" " + w)
		col += 1 + len(w)
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

func armoredLen(n int) int {
	b64 := (n + 2) / 3 * 4
	return b64 + b64/64*2 + 80
}

// SignClear signs the MIME entity inner as a clear-signed RFC 3156
// multipart/signed message with the outer header fields of outer. Leaf
// bodies that are not 7-bit safe (8-bit data, long lines, trailing
// white space, "From " lines) are re-encoded as quoted-printable (text)
// or base64, so the signed bytes survive transport. The fields of outer
// missing from inner are copied into it with hp="clear" (RFC 9788), so
// Subject, From and Date are covered by the signature.
func SignClear(inner []byte, outer textproto.Header, signer *Key, at time.Time) ([]byte, error) {
	if err := checkSigner(signer); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	lim := DefaultLimits()
	safe, err := sevenBit(toCRLF(inner), &lim, 1)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	ie, err := splitEntity(safe, &lim)
	if err != nil {
		return nil, fmt.Errorf("sign: inner entity: %w", err)
	}
	h := ie.header.Copy()
	copyMissing(&h, outer)
	if err := setHP(&h, "clear"); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	head, err := headerBytes(h)
	if err != nil {
		return nil, fmt.Errorf("sign: inner header: %w", err)
	}
	part := append(head, ie.body...)

	cfg := &packet.Config{Time: func() time.Time { return at }, DefaultHash: sealHash}
	var sigBuf bytes.Buffer
	if err := openpgp.DetachSign(&sigBuf, signer.e, bytes.NewReader(part), cfg); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	p, err := packet.Read(bytes.NewReader(sigBuf.Bytes()))
	if err != nil {
		return nil, fmt.Errorf("sign: reread signature: %w", err)
	}
	sig, ok := p.(*packet.Signature)
	if !ok {
		return nil, errors.New("sign: signer produced no signature packet")
	}
	micalg, err := micalgOf(sig.Hash)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}

	boundary := randomBoundary()
	oh := nonStructural(outer)
	// A clear-signed message shows its protected fields outside too
	// (RFC 9788): a Subject only given inside still reaches mail clients.
	copyMissing(&oh, h)
	oh.Set("MIME-Version", "1.0")
	oh.Del("Content-Type")
	oh.AddRaw(foldField("Content-Type", formatMediaType("multipart/signed", map[string]string{
		"micalg": micalg, "protocol": "application/pgp-signature", "boundary": boundary})))
	out, err := headerBytes(oh)
	if err != nil {
		return nil, fmt.Errorf("sign: outer header: %w", err)
	}
	out = append(out, "This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n--"+boundary+"\r\n"...)
	out = append(out, part...)
	out = append(out, "\r\n--"+boundary+"\r\n"+
		"Content-Type: application/pgp-signature; name=\"signature.asc\"\r\n"+
		"Content-Description: OpenPGP digital signature\r\n"+
		"Content-Disposition: attachment; filename=\"signature.asc\"\r\n"+
		"\r\n"...)
	out = appendArmor(out, "PGP SIGNATURE", sigBuf.Bytes())
	out = append(out, "\r\n--"+boundary+"--\r\n"...)
	return out, nil
}

func micalgOf(h stdcrypto.Hash) (string, error) {
	switch h {
	case stdcrypto.SHA256:
		return "pgp-sha256", nil
	case stdcrypto.SHA384:
		return "pgp-sha384", nil
	case stdcrypto.SHA512:
		return "pgp-sha512", nil
	case stdcrypto.SHA224:
		return "pgp-sha224", nil
	case stdcrypto.SHA3_256:
		return "pgp-sha3-256", nil
	case stdcrypto.SHA3_512:
		return "pgp-sha3-512", nil
	}
	return "", fmt.Errorf("no micalg for hash %v", h)
}

// sevenBit re-encodes the leaves of a CRLF entity that are not safe for
// 7-bit transport of signed data.
func sevenBit(raw []byte, lim *Limits, depth int) ([]byte, error) {
	if depth > lim.MaxDepth {
		return nil, &LimitError{What: "MIME depth", Limit: int64(lim.MaxDepth)}
	}
	e, err := splitEntity(raw, lim)
	if err != nil {
		return nil, err
	}
	t, params := mediaType(e.header)
	if strings.HasPrefix(t, "multipart/") {
		parts, err := splitMultipart(e.body, params["boundary"], lim.MaxParts)
		if err != nil {
			return nil, err
		}
		head, err := headerBytes(e.header)
		if err != nil {
			return nil, err
		}
		out := head
		for _, p := range parts {
			sp, err := sevenBit(p, lim, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, "--"+params["boundary"]+"\r\n"...)
			out = append(out, sp...)
			out = append(out, "\r\n"...)
		}
		return append(out, "--"+params["boundary"]+"--\r\n"...), nil
	}
	switch strings.ToLower(strings.TrimSpace(e.header.Get("Content-Transfer-Encoding"))) {
	case "base64", "quoted-printable":
		return raw, nil
	}
	if transportSafe(e.body) {
		return raw, nil
	}
	h := e.header.Copy()
	var body bytes.Buffer
	if strings.HasPrefix(t, "text/") {
		h.Set("Content-Transfer-Encoding", "quoted-printable")
		qp := quotedprintable.NewWriter(&body)
		if _, err := qp.Write(e.body); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
		b := bytes.ReplaceAll(body.Bytes(), []byte("\r\nFrom "), []byte("\r\n=46rom "))
		if bytes.HasPrefix(b, []byte("From ")) {
			b = append([]byte("=46"), b[1:]...)
		}
		body.Reset()
		body.Write(b)
	} else {
		h.Set("Content-Transfer-Encoding", "base64")
		enc := base64.StdEncoding.EncodeToString(e.body)
		for len(enc) > 76 {
			body.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		body.WriteString(enc + "\r\n")
	}
	head, err := headerBytes(h)
	if err != nil {
		return nil, err
	}
	return append(head, body.Bytes()...), nil
}

// transportSafe reports whether b is 7-bit text with short lines, no
// trailing white space and no "From " line starts.
func transportSafe(b []byte) bool {
	lineStart := 0
	for i := 0; i <= len(b); i++ {
		if i < len(b) {
			c := b[i]
			if c >= 0x80 || c == 0 || (c == '\r' && (i+1 >= len(b) || b[i+1] != '\n')) {
				return false
			}
			if c != '\n' {
				continue
			}
		}
		end := i
		if end > lineStart && b[end-1] == '\r' {
			end--
		}
		line := b[lineStart:end]
		if len(line) > 76 || bytes.HasPrefix(line, []byte("From ")) {
			return false
		}
		if n := len(line); n > 0 && (line[n-1] == ' ' || line[n-1] == '\t') {
			return false
		}
		lineStart = i + 1
	}
	return true
}
