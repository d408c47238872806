package crypto

import (
	"bytes"
	"encoding/base64"
	"mime/quotedprintable"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// encryptSigned encrypts data to k, signed by signer at time at (one
// OpenPGP message, as gpg --encrypt --sign makes it).
func encryptSigned(t testing.TB, to, signer *Key, data []byte, at time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := openpgp.Encrypt(&buf, []*openpgp.Entity{to.e}, signer.e, &openpgp.FileHints{IsBinary: true}, &packet.Config{Time: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return appendArmor(nil, "PGP MESSAGE", buf.Bytes())
}

// reArmor decodes the first armored block of kind in b and encodes it
// again with other armor headers (Comment:, Version:) and line lengths.
func reArmor(t testing.TB, b []byte, kind string) []byte {
	t.Helper()
	begin := []byte("-----BEGIN " + kind + "-----")
	end := []byte("-----END " + kind + "-----")
	i, j := bytes.Index(b, begin), bytes.Index(b, end)
	if i < 0 || j < i {
		t.Fatalf("no %s block", kind)
	}
	blk, err := armor.Decode(bytes.NewReader(b[i : j+len(end)]))
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(blk.Body)
	var out bytes.Buffer
	w, err := armor.Encode(&out, kind, map[string]string{"Comment": "replayed by mallory", "Version": "Mallory 1.0"})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body.Bytes())
	w.Close()
	return append(append(append([]byte(nil), b[:i]...), out.Bytes()...), b[j+len(end):]...)
}

func qp(b []byte) string {
	var out bytes.Buffer
	w := quotedprintable.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.String()
}

func b64(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	return out.String() + s + "\r\n"
}

func textMessage(msgID, to, ctype, cte, body string) []byte {
	h := "From: Cora <cora@example.org>\r\nTo: " + to + "\r\nSubject: ...\r\nMessage-ID: " + msgID + "\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: " + ctype + "\r\n"
	if cte != "" {
		h += "Content-Transfer-Encoding: " + cte + "\r\n"
	}
	return []byte(h + "\r\n" + body)
}

// TestSignatureIDSurvivesReencoding generates the re-encodings an attacker
// can make of a captured signed command without breaking its signature
// (everything outside the signed data: charset, transfer encoding, line
// endings, armor headers, inline or PGP/MIME wrapping, Message-ID, list)
// and checks that each still verifies and names the same signature, so
// the replay record refuses it. Different signatures, even made in the
// same second, get different IDs.
func TestSignatureIDSurvivesReencoding(t *testing.T) {
	list, cora, dan := ed(t, "list"), ed(t, "cora"), ed(t, "dan")
	at := testNow.Add(-time.Minute).Truncate(time.Second)
	text := []byte("x-list: 2026-001\r\nx-embargo: 2026-12-01T10:00Z\r\n\r\nMoving the date.  \r\n")

	clear, err := ClearSign(text, cora, at)
	if err != nil {
		t.Fatal(err)
	}
	enc := encryptSigned(t, list, cora, text, at)
	clearEnc := encryptUnsigned(t, list, clear) // someone who read the clear-signed text encrypts it again

	lf := func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }
	trailing := bytes.ReplaceAll(clear, []byte("Moving the date."), []byte("Moving the date.\t \t"))
	to1, to2 := "security+2026-001@example.org", "security+2026-002@example.org"
	mime := func(id, to string, armored []byte) []byte {
		return []byte("From: Cora <cora@example.org>\r\nTo: " + to + "\r\nMessage-ID: " + id + "\r\nMIME-Version: 1.0\r\n" + encryptedPart(armored))
	}
	type variant struct {
		name, sig string // sig: which signature it carries, "clear" or "onepass"
		raw       []byte
	}
	cases := []variant{
		// The captured originals.
		{"clear-signed inline", "clear", textMessage("<c1@example.org>", to1, "text/plain; charset=utf-8", "8bit", string(clear))},
		{"encrypted+signed PGP/MIME", "onepass", mime("<e1@example.org>", to1, enc)},
		{"encrypted+signed inline", "onepass", textMessage("<e2@example.org>", to1, "text/plain; charset=utf-8", "7bit", string(enc))},
		// Charset of the outer, unsigned Content-Type.
		{"charset=utf8", "clear", textMessage("<c2@example.org>", to1, "text/plain; charset=utf8", "8bit", string(clear))},
		{"charset=iso-8859-1", "clear", textMessage("<c3@example.org>", to1, "text/plain; charset=iso-8859-1", "", string(clear))},
		{"no charset", "clear", textMessage("<c4@example.org>", to1, "text/plain", "", string(clear))},
		{"charset=UTF8 format=flowed, encrypted", "onepass", textMessage("<e3@example.org>", to1, "text/plain; charset=\"UTF8\"; format=flowed", "", string(enc))},
		// Transfer encodings of the inline block.
		{"quoted-printable", "clear", textMessage("<c5@example.org>", to1, "text/plain; charset=utf-8", "quoted-printable", qp(clear))},
		{"base64", "clear", textMessage("<c6@example.org>", to1, "text/plain; charset=utf-8", "base64", b64(clear))},
		{"base64, encrypted", "onepass", textMessage("<e4@example.org>", to1, "text/plain; charset=utf-8", "base64", b64(enc))},
		{"quoted-printable, encrypted", "onepass", textMessage("<e5@example.org>", to1, "text/plain", "quoted-printable", qp(enc))},
		// Line endings.
		{"LF line endings", "clear", lf(textMessage("<c7@example.org>", to1, "text/plain; charset=utf-8", "8bit", string(clear)))},
		{"LF line endings, encrypted", "onepass", lf(textMessage("<e6@example.org>", to1, "text/plain; charset=utf-8", "", string(enc)))},
		// Trailing white space, which a cleartext signature ignores.
		{"trailing blanks", "clear", textMessage("<c8@example.org>", to1, "text/plain; charset=utf-8", "8bit", string(trailing))},
		// Armor headers and re-armoring.
		{"armor headers on the signature", "clear", textMessage("<c9@example.org>", to1, "text/plain; charset=utf-8", "8bit", string(reArmor(t, clear, "PGP SIGNATURE")))},
		{"armor headers on the message", "onepass", textMessage("<e7@example.org>", to1, "text/plain; charset=utf-8", "8bit", string(reArmor(t, enc, "PGP MESSAGE")))},
		// Inline to PGP/MIME and back, another Message-ID, another list.
		{"PGP/MIME to inline, other list", "onepass", textMessage("<m1@evil.example>", to2, "text/plain; charset=utf8", "base64", b64(reArmor(t, enc, "PGP MESSAGE")))},
		{"inline to PGP/MIME, other list", "onepass", mime("<m2@evil.example>", to2, reArmor(t, enc, "PGP MESSAGE"))},
		{"clear-signed, encrypted again by a reader", "clear", textMessage("<m3@evil.example>", to2, "text/plain; charset=utf-8", "", string(clearEnc))},
		{"clear-signed inside multipart/mixed", "clear", textMessage("<m4@evil.example>", to2, "multipart/mixed; boundary=M", "",
			"--M\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"+qp(clear)+"\r\n--M--\r\n")},
	}
	groups := map[string]string{}
	entities := map[string]string{}
	for _, c := range cases {
		o, err := Open(c.raw, []*Key{list}, []*Key{cora, dan}, testNow, Limits{})
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if o.Signature != Good || o.SignatureID == "" || !o.SignedAt.Equal(at) {
			t.Errorf("%s: signature %v id %q at %v (notes %v)", c.name, o.Signature, o.SignatureID, o.SignedAt, o.Notes)
			continue
		}
		if want, ok := groups[c.sig]; ok && want != o.SignatureID {
			t.Errorf("%s: SignatureID %s, the captured message has %s", c.name, o.SignatureID, want)
		}
		groups[c.sig] = o.SignatureID
		entities[c.name] = string(o.Entity)
	}
	// What the old replay record hashed (the rebuilt entity) differs: the
	// attack this test guards against.
	if entities["charset=utf8"] == entities["clear-signed inline"] {
		t.Error("the charset re-encoding yields the same entity; the test would not tell the old digest from the new one")
	}
	if len(groups) != 2 || groups["clear"] == groups["onepass"] {
		t.Errorf("signature IDs: %v", groups)
	}

	// Different signatures made in the same second differ: other text,
	// other signer.
	other, err := ClearSign([]byte("x-list: 2026-001\r\nx-embargo: 2026-12-02T10:00Z\r\n"), cora, at)
	if err != nil {
		t.Fatal(err)
	}
	byDan, err := ClearSign(text, dan, at)
	if err != nil {
		t.Fatal(err)
	}
	for name, signed := range map[string][]byte{"other text": other, "other signer": byDan} {
		o, err := Open(textMessage("<x@example.org>", "security+2026-001@example.org", "text/plain", "", string(signed)), nil, []*Key{cora, dan}, testNow, Limits{})
		if err != nil || o.Signature != Good {
			t.Fatalf("%s: %v %v", name, err, o)
		}
		if o.SignatureID == groups["clear"] || o.SignatureID == groups["onepass"] {
			t.Errorf("%s in the same second has the same SignatureID", name)
		}
	}
}
