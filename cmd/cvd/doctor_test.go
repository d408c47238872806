package main

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/dnstest"
)

// TestDoctorThroughTheBinary: a running cvd relaying through a smarthost,
// with the records 'cvd dns' printed on a loopback DNS server, is all ok
// for 'cvd doctor' (exit 0); with the relay gone, only delivery is wrong
// and the exit status is 1.
func TestDoctorThroughTheBinary(t *testing.T) {
	caPEM, cert := privateCA(t, "relay.internal.test")
	srv := smtp.NewServer(&recordingRelay{})
	srv.Domain = "relay.internal.test"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	dir, cfg := initDir(t, "example.org")
	os.WriteFile(filepath.Join(dir, "relay-ca.pem"), caPEM, 0o600)
	cvdtest.SetConfig(t, cfg, "mode", `"smarthost"`+"\nsmarthost = \""+ln.Addr().String()+"\"\nca_file = \"relay-ca.pem\"\nserver_name = \"relay.internal.test\"")
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	defer s.stop(t)
	cvdtest.SetConfig(t, cfg, "base_url", `"http://`+s.webAddr(t)+`"`)
	dns := dnstest.Start(t, zoneRecords(t, dir, cfg)...)

	code, out, errOut := runCVD(t, dir, nil, "doctor", "--config", cfg, "--resolver", dns.Addr)
	if code != 0 || strings.Contains(out, "WRONG") {
		t.Fatalf("doctor on a good setup: exit %d\n%s%s", code, out, errOut)
	}
	for _, item := range []string{"spf", "dkim/cvd-rsa", "dkim/cvd-ed25519", "dmarc", "tls", "pgp", "security.txt", "delivery", "disk"} {
		if !strings.Contains(out, "ok     "+item+" ") {
			t.Errorf("doctor does not report %s ok:\n%s", item, out)
		}
	}

	srv.Close()
	code, out, _ = runCVD(t, dir, nil, "doctor", "--config", cfg, "--resolver", dns.Addr)
	if code != 1 || strings.Count(out, "WRONG") != 1 || !strings.Contains(out, "WRONG  delivery") {
		t.Errorf("doctor with the relay down: exit %d\n%s", code, out)
	}
}
