// Package dkimtest verifies DKIM signatures in tests with an independent
// verifier: Debian's python3-dkim, reading keys from a loopback DNS
// server (internal/dnstest).
package dkimtest

import (
	"bytes"
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

//go:embed dkimverify.py
var script []byte

// Python is the interpreter that has python3-dkim and python3-dnspython.
const Python = "/usr/bin/python3"

// Available skips t when the verifier is not installed.
func Available(t testing.TB) {
	t.Helper()
	if err := exec.Command(Python, "-c", "import dkim, dns.query").Run(); err != nil {
		t.Skip("python3-dkim and python3-dnspython are not installed (apt-get install python3-dkim python3-dnspython)")
	}
}

// Verify checks every DKIM-Signature of raw against the keys published
// on the DNS server at dnsAddr (HOST:PORT). It returns the verifier's
// report (one line per signature) and whether all signatures passed.
func Verify(t testing.TB, dnsAddr string, raw []byte) (report string, ok bool) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dkimverify.py")
	if err := os.WriteFile(path, script, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Python, path, dnsAddr)
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.CombinedOutput()
	if _, exit := err.(*exec.ExitError); err != nil && !exit {
		t.Fatalf("run dkimverify: %v", err)
	}
	return string(out), err == nil
}
