package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// privateCA makes a CA and a server certificate it issued for name only.
func privateCA(t *testing.T, name string) (caPEM []byte, server tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Relay Test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestSmarthostWithPrivateCA is a relay reached by IP address whose
// certificate a private CA issued for its name: without delivery.ca_file
// and delivery.server_name cvd refuses it (the mail waits, with the TLS
// reason in the queue); with them, the mail goes through over TLS.
func TestSmarthostWithPrivateCA(t *testing.T) {
	caPEM, cert := privateCA(t, "relay.internal.test")
	relay, addr := startRelay(t, func(srv *smtp.Server) {
		srv.Domain = "relay.internal.test"
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	})
	dir, cfg := initDir(t, "example.org")
	os.WriteFile(filepath.Join(dir, "relay-ca.pem"), caPEM, 0o600)
	useSmarthost(t, cfg, addr, "starttls")

	report := func(s *server, from string) {
		t.Helper()
		c, err := smtp.Dial(s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.SendMail(from, []string{"security@example.org"}, strings.NewReader("From: <"+from+">\r\nSubject: bug\r\n\r\ndetails\r\n")); err != nil {
			t.Fatal(err)
		}
	}

	// The system's roots do not know the private CA.
	s := startCVD(t, t.TempDir(), nil, "--config", cfg)
	report(s, "rita@reporter.example")
	deferred := regexp.MustCompile(`(?m)rita@reporter\.example +deferred .*(certificate|x509|TLS)`)
	var queue string
	waitFor(t, "the acknowledgement deferred for the relay's certificate", func() bool {
		_, queue, _ = runCVD(t, dir, nil, "queue", "list", "--config", cfg, "--all")
		return deferred.MatchString(queue)
	}, func() string { return queue + "\n" + s.Logs() })
	if relay.got("rita@reporter.example") {
		t.Fatal("mail went to a relay whose certificate cvd cannot verify")
	}
	s.stop(t)

	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), `tls = "starttls"`, `tls = "starttls"`+"\nca_file = \"relay-ca.pem\"\nserver_name = \"relay.internal.test\"", 1)), 0o600)
	s = startCVD(t, t.TempDir(), nil, "--config", cfg)
	defer s.stop(t)
	report(s, "sam@reporter.example")
	waitFor(t, "the acknowledgement at the relay over verified TLS", func() bool { return relay.got("sam@reporter.example") }, s.Logs)
}
