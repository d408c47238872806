package crypto

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-message"
)

// mimePart returns the header and decoded body of part i of a multipart
// message, parsed with go-message rather than this package.
func mimePart(t *testing.T, raw []byte, i int) (message.Header, []byte) {
	t.Helper()
	m, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mr := m.MultipartReader()
	if mr == nil {
		t.Fatal("not multipart")
	}
	for n := 0; ; n++ {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if n == i {
			b, err := io.ReadAll(p.Body)
			if err != nil {
				t.Fatal(err)
			}
			return p.Header, b
		}
	}
}

func TestSealDecryptsInGPG(t *testing.T) {
	list, alice, bob := ed(t, "list"), ed(t, "alice"), ed(t, "bob")
	copies, err := SealFanout([]byte(innerEntity), outerHeader("security+2026-001@example.org"), list, []*Key{alice, bob}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	ga, gb := newGPG(t), newGPG(t)
	ga.importKey(mustArmorPrivate(t, alice))
	ga.importKey(mustArmorPublic(t, list))
	gb.importKey(mustArmorPrivate(t, bob))
	gb.importKey(mustArmorPublic(t, list))

	for i, g := range []*gpgHome{ga, gb} {
		m, err := message.Read(bytes.NewReader(copies[i]))
		if err != nil {
			t.Fatal(err)
		}
		if s := m.Header.Get("Subject"); s != "[...]" {
			t.Fatalf("outer subject %q", s)
		}
		ph, armored := mimePart(t, copies[i], 1)
		if ct, _, _ := ph.ContentType(); ct != "application/octet-stream" {
			t.Fatalf("part 2 type %q", ct)
		}
		if bytes.Contains(armored, []byte("Version:")) {
			t.Fatal("armor carries a Version header")
		}
		_, pkts := g.mustRun(armored, "--list-only", "--list-packets")
		_ = pkts
		listing, _, _ := g.run(armored, "--list-only", "--list-packets")
		if n := bytes.Count(listing, []byte(":pubkey enc packet:")); n != 1 {
			t.Fatalf("copy %d has %d PKESK packets:\n%s", i, n, listing)
		}
		plain, status := g.mustRun(armored, "--decrypt")
		for _, want := range []string{"DECRYPTION_OKAY", "GOODSIG", "VALIDSIG " + list.Fingerprint()} {
			if !hasStatus(status, want) {
				t.Fatalf("copy %d: no %s in gpg status:\n%s", i, want, status)
			}
		}
		if !bytes.Contains(plain, []byte("Subject: [2026-001] heap overflow in the parser\r\n")) ||
			!bytes.Contains(plain, []byte(`hp="cipher"`)) || !bytes.Contains(plain, []byte("HP-Outer: Subject: [...]")) {
			t.Fatalf("inner entity lacks protected headers:\n%s", plain)
		}
	}
	_, armored := mimePart(t, copies[0], 1)
	if _, status, err := gb.run(armored, "--decrypt"); err == nil || hasStatus(status, "DECRYPTION_OKAY") {
		t.Fatalf("bob decrypted alice's copy: %v\n%s", err, status)
	}
}

func TestOpenFromGPG(t *testing.T) {
	list, alice, bob := ed(t, "list"), ed(t, "alice"), ed(t, "bob")
	g := newGPG(t)
	g.importKey(mustArmorPrivate(t, alice))
	g.importKey(mustArmorPublic(t, list))
	sender := []*Key{alice.Public()}
	open := func(t *testing.T, raw string, verify []*Key) *Opened {
		t.Helper()
		o, err := Open([]byte(raw), []*Key{list}, verify, testNow, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}

	inner := "Content-Type: text/plain; charset=utf-8\nSubject: secret subject\n\nreport body\n"
	ct, _ := g.mustRun([]byte(inner), "--encrypt", "--sign", "--armor", "-r", "list@example.org", "-u", "alice@example.org")
	pgpmime := "From: alice@example.org\nTo: security@example.org\nSubject: ...\nMIME-Version: 1.0\n" +
		"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"XX\"\n\n" +
		"--XX\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n\n" +
		"--XX\nContent-Type: application/octet-stream\n\n" + string(ct) + "\n--XX--\n"

	t.Run("pgpmime", func(t *testing.T) {
		o := open(t, pgpmime, sender)
		if !o.Encrypted || o.Signature != Good || o.Signer != alice.Fingerprint() {
			t.Fatalf("encrypted=%v sig=%v signer=%s", o.Encrypted, o.Signature, o.Signer)
		}
		if o.Header.Get("Subject") != "secret subject" || !bytes.Contains(o.Entity, []byte("report body\r\n")) {
			t.Fatalf("entity:\n%s", o.Entity)
		}
		if o.DroppedParts != 0 {
			t.Fatalf("dropped %d", o.DroppedParts)
		}
	})
	t.Run("unknown signer", func(t *testing.T) {
		o := open(t, pgpmime, []*Key{bob.Public()})
		if o.Signature != UnknownSigner || o.Signer != alice.Fingerprint() {
			t.Fatalf("sig=%v signer=%s", o.Signature, o.Signer)
		}
	})
	t.Run("inline", func(t *testing.T) {
		armored, _ := g.mustRun([]byte("inline secret\nline two\n"), "--armor", "--encrypt", "--sign", "-r", "list@example.org", "-u", "alice@example.org")
		raw := "From: alice@example.org\r\nSubject: inline\r\nContent-Type: text/plain\r\n\r\n" + string(armored)
		o := open(t, raw, sender)
		if !o.Encrypted || o.Signature != Good || o.Signer != alice.Fingerprint() {
			t.Fatalf("encrypted=%v sig=%v", o.Encrypted, o.Signature)
		}
		if !bytes.HasSuffix(o.Entity, []byte("\r\n\r\ninline secret\r\nline two\r\n")) {
			t.Fatalf("entity %q", o.Entity)
		}
	})
	t.Run("inline quoted-printable with text around", func(t *testing.T) {
		armored, _ := g.mustRun([]byte("inline secret\n"), "--armor", "--encrypt", "--sign", "-r", "list@example.org", "-u", "alice@example.org")
		raw := "Subject: inline\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
			"Attacker text =3D before\r\n" + strings.ReplaceAll(string(armored), "\n", "\r\n") + "trailing text\r\n"
		o := open(t, raw, sender)
		if !o.Encrypted || o.Signature != Good || o.DroppedParts != 2 {
			t.Fatalf("encrypted=%v sig=%v dropped=%d", o.Encrypted, o.Signature, o.DroppedParts)
		}
		if bytes.Contains(o.Entity, []byte("Attacker")) || bytes.Contains(o.Entity, []byte("trailing")) {
			t.Fatalf("unencrypted text merged: %q", o.Entity)
		}
	})
	t.Run("clearsigned", func(t *testing.T) {
		signed, _ := g.mustRun([]byte("public advisory\n- dashed line\n"), "--clearsign", "-u", "alice@example.org")
		raw := "Subject: advisory\r\nContent-Type: text/plain\r\n\r\n" + string(signed)
		o := open(t, raw, sender)
		if o.Encrypted || o.Signature != Good || o.Signer != alice.Fingerprint() {
			t.Fatalf("encrypted=%v sig=%v", o.Encrypted, o.Signature)
		}
		if !bytes.HasSuffix(o.Entity, []byte("public advisory\r\n- dashed line")) && !bytes.HasSuffix(o.Entity, []byte("public advisory\r\n- dashed line\r\n")) {
			t.Fatalf("entity %q", o.Entity)
		}
	})
	t.Run("pgpmime signed", func(t *testing.T) {
		part := "Content-Type: text/plain; charset=us-ascii\r\n\r\nsigned body  \r\n"
		sig, _ := g.mustRun([]byte(part), "--detach-sign", "--armor", "-u", "alice@example.org")
		raw := "Subject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"; boundary=B\r\n\r\n" +
			"--B\r\n" + part + "\r\n--B\r\nContent-Type: application/pgp-signature\r\n\r\n" + string(sig) + "\r\n--B--\r\n"
		o := open(t, raw, sender)
		if o.Encrypted || o.Signature != Good || string(o.Entity) != part {
			t.Fatalf("sig=%v entity=%q", o.Signature, o.Entity)
		}
		bad := strings.Replace(raw, "signed body", "signed b0dy", 1)
		if o := open(t, bad, sender); o.Signature != Bad {
			t.Fatalf("altered body: %v", o.Signature)
		}
	})
}

func TestSignClearVerifiesInGPG(t *testing.T) {
	list := ed(t, "list")
	g := newGPG(t)
	g.importKey(mustArmorPublic(t, list))
	inner := "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
		"Advisory 2026-001: crédits to Zoë.  \r\nFrom the team.\r\n"
	var h = outerHeader("announce@example.org")
	h.Add("Subject", "[ANNOUNCE] 2026-001 fixed")
	msg, err := SignClear([]byte(inner), h, list, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.IndexFunc(msg, func(r rune) bool { return r >= 0x80 }); i >= 0 {
		t.Fatalf("non-ASCII byte at %d", i)
	}
	m, err := message.Read(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	_, params, _ := m.Header.ContentType()
	boundary := params["boundary"]
	if params["micalg"] != "pgp-sha512" {
		t.Fatalf("micalg %q", params["micalg"])
	}
	s := string(msg)
	start := strings.Index(s, "--"+boundary+"\r\n") + len(boundary) + 4
	end := strings.Index(s[start:], "\r\n--"+boundary+"\r\n") + start
	part := s[start:end]
	_, sig := mimePart(t, msg, 1)
	if !bytes.HasPrefix(sig, []byte("-----BEGIN PGP SIGNATURE-----")) {
		t.Fatalf("signature armor %q", sig[:40])
	}
	sigPath := g.writeFile("sig.asc", sig)
	partPath := g.writeFile("part", []byte(part))
	_, status := g.mustRun(nil, "--verify", sigPath, partPath)
	if !hasStatus(status, "GOODSIG") || !hasStatus(status, "VALIDSIG "+list.Fingerprint()) {
		t.Fatalf("gpg status:\n%s", status)
	}
	for _, l := range strings.Split(status, "\n") {
		if f := strings.Fields(l); len(f) > 8 && f[0] == "VALIDSIG" && f[8] != "10" {
			t.Fatalf("hash algo %s, micalg says sha512", f[8])
		}
	}
	if !strings.Contains(part, "quoted-printable") || !strings.Contains(part, "Subject: [ANNOUNCE] 2026-001 fixed") {
		t.Fatalf("signed part:\n%s", part)
	}
	o, err := Open(msg, nil, []*Key{list.Public()}, testNow, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Signature != Good || o.Protection != "clear" || o.Protected.Get("Subject") != "[ANNOUNCE] 2026-001 fixed" {
		t.Fatalf("sig=%v protection=%q", o.Signature, o.Protection)
	}
}
