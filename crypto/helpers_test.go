package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
)

// testNow is a fixed clock so results do not depend on the wall time of
// the test run; keys are created an hour before it.
var testNow = time.Now().Truncate(time.Second)

var (
	keyMu    sync.Mutex
	keyCache = map[string]*Key{}
)

// testKey returns a cached key for name (an email local part) of kind.
func testKey(tb testing.TB, name, kind string) *Key {
	tb.Helper()
	keyMu.Lock()
	defer keyMu.Unlock()
	id := name + "/" + kind
	if k, ok := keyCache[id]; ok {
		return k
	}
	k, err := generate(strings.ToUpper(name[:1])+name[1:], name+"@example.org", kind, testNow.Add(-time.Hour), 0)
	if err != nil {
		tb.Fatalf("generate %s: %v", id, err)
	}
	keyCache[id] = k
	return k
}

func ed(tb testing.TB, name string) *Key { return testKey(tb, name, KindCurve25519) }

func mustArmorPublic(tb testing.TB, k *Key) []byte {
	tb.Helper()
	b, err := k.ArmoredPublic()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func mustArmorPrivate(tb testing.TB, k *Key) []byte {
	tb.Helper()
	b, err := k.ArmoredPrivate()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func outerHeader(to string) textproto.Header {
	var h textproto.Header
	h.Add("Message-Id", "<post-1@example.org>")
	h.Add("Date", testNow.Format(time.RFC1123Z))
	h.Add("To", to)
	h.Add("From", "Security list <security+2026-001@example.org>")
	return h
}

const innerEntity = "Subject: [2026-001] heap overflow in the parser\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: 8bit\r\n" +
	"\r\n" +
	"The parser overflows on long lines. Fix attached.\r\n" +
	"Grüße\r\n"

// gpgHome is a throw-away GnuPG home directory.
type gpgHome struct {
	tb  testing.TB
	dir string
}

func newGPG(tb testing.TB) *gpgHome {
	tb.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		tb.Skip("gpg not installed")
	}
	dir, err := os.MkdirTemp("/tmp", "g")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	g := &gpgHome{tb: tb, dir: dir}
	tb.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "gpg-agent")
		cmd.Env = append(os.Environ(), "GNUPGHOME="+dir)
		_ = cmd.Run()
		os.RemoveAll(dir)
	})
	return g
}

// run runs gpg with stdin and returns stdout, the status lines and the
// error.
func (g *gpgHome) run(stdin []byte, args ...string) ([]byte, string, error) {
	base := []string{"--homedir", g.dir, "--batch", "--no-tty", "--pinentry-mode", "loopback",
		"--passphrase", "", "--trust-model", "always", "--status-fd", "2"}
	cmd := exec.Command("gpg", append(base, args...)...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+g.dir, "TZ=UTC")
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var status []string
	for _, l := range strings.Split(errb.String(), "\n") {
		if strings.HasPrefix(l, "[GNUPG:] ") {
			status = append(status, strings.TrimPrefix(l, "[GNUPG:] "))
		}
	}
	if err != nil {
		err = fmt.Errorf("gpg %v: %w\n%s", args, err, errb.String())
	}
	return out.Bytes(), strings.Join(status, "\n"), err
}

func (g *gpgHome) mustRun(stdin []byte, args ...string) ([]byte, string) {
	g.tb.Helper()
	out, status, err := g.run(stdin, args...)
	if err != nil {
		g.tb.Fatal(err)
	}
	return out, status
}

func (g *gpgHome) importKey(armored []byte) {
	g.tb.Helper()
	g.mustRun(armored, "--import")
}

func (g *gpgHome) writeFile(name string, data []byte) string {
	g.tb.Helper()
	p := g.dir + "/" + name
	if err := os.WriteFile(p, data, 0o600); err != nil {
		g.tb.Fatal(err)
	}
	return p
}

func hasStatus(status, prefix string) bool {
	for _, l := range strings.Split(status, "\n") {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
