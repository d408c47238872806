package ops

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/crypto"
)

// Resolver is what the doctor asks DNS; *net.Resolver is one.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
}

// Check is the result of one doctor item.
type Check struct {
	Item string
	OK   bool
	// Msg says what was found; Fix what to do when !OK.
	Msg string
	Fix string
}

// DoctorOptions are the doctor's dependencies.
type DoctorOptions struct {
	Resolver   Resolver
	Now        time.Time
	ProjectKey *crypto.Key
	// CheckRelay connects to the smarthost (nil outside smarthost mode).
	CheckRelay func(ctx context.Context) error
	// HTTP fetches security.txt; http.DefaultClient when nil.
	HTTP *http.Client
	// MinFreeBytes is the least free space on the data folder; 1 GiB when 0.
	MinFreeBytes uint64
}

// Doctor checks c's live setup item by item.
func Doctor(ctx context.Context, c *config.Config, o DoctorOptions) []Check {
	var out []Check
	add := func(item string, err error, okMsg, fix string) {
		if err != nil {
			out = append(out, Check{Item: item, Msg: err.Error(), Fix: fix})
			return
		}
		out = append(out, Check{Item: item, OK: true, Msg: okMsg})
	}
	rs, err := Records(c)
	if err != nil {
		add("dns", err, "", "fix the [dkim] key files, or run 'cvd init' to make them")
		rs = nil
	}
	for _, r := range rs {
		if r.Optional {
			continue
		}
		want := unquoteTXT(r.Value)
		switch {
		case r.Item == "mx":
			add(r.Item, checkMX(ctx, o.Resolver, c), "MX points to "+c.Hostname, "publish: "+r.Zone())
		case r.Item == "spf":
			add(r.Item, checkSPF(ctx, o.Resolver, r.Name, want), "SPF allows this sender", "publish one SPF record: "+r.Zone())
		case r.Item == "dmarc":
			add(r.Item, checkDMARC(ctx, o.Resolver, r.Name), "DMARC record present", "publish: "+r.Zone())
		case strings.HasPrefix(r.Item, "dkim/"):
			add(r.Item, checkDKIM(ctx, o.Resolver, r.Name, want), "public key matches the key file", "publish (run 'cvd dns'): "+r.Zone())
		}
	}
	add("tls", checkCert(c, o.Now), "certificate valid for "+c.Hostname, "install a certificate for "+c.Hostname+" (e.g. from Let's Encrypt) at tls.cert_file and tls.key_file")
	add("pgp", checkProjectKey(o.ProjectKey, o.Now), "project key valid for more than 30 days", "extend the project key's expiry (gpg --quick-set-expire) and replace pgp.key_file and pgp.public_file")
	add("security.txt", checkSecurityTxt(ctx, o, c.Web.BaseURL+"/.well-known/security.txt"), "Expires is more than 30 days away",
		"serve cvd's site at "+c.Web.BaseURL+" (web.listen behind a proxy, or 'cvd site build' regularly)")
	add("delivery", checkDelivery(ctx, c, o), "mode "+c.Delivery.Mode, deliveryFix(c))
	add("disk", checkDisk(c.DataDir, o.MinFreeBytes), "enough free space in "+c.DataDir, "free space on the disk of "+c.DataDir)
	return out
}

// PrintChecks writes one line per check and returns whether all passed.
func PrintChecks(w io.Writer, cs []Check) bool {
	all := true
	for _, ch := range cs {
		if ch.OK {
			fmt.Fprintf(w, "ok     %-20s %s\n", ch.Item, ch.Msg)
			continue
		}
		all = false
		fmt.Fprintf(w, "WRONG  %-20s %s\n       fix: %s\n", ch.Item, ch.Msg, ch.Fix)
	}
	return all
}

func lookupTXT(ctx context.Context, r Resolver, name string) ([]string, error) {
	v, err := r.LookupTXT(ctx, name)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return nil, nil
		}
		return nil, fmt.Errorf("look up TXT %s: %w", name, err)
	}
	return v, nil
}

func checkMX(ctx context.Context, r Resolver, c *config.Config) error {
	mxs, err := r.LookupMX(ctx, c.Domain+".")
	if err != nil {
		return fmt.Errorf("no MX for %s: %w", c.Domain, err)
	}
	for _, mx := range mxs {
		if strings.EqualFold(strings.TrimSuffix(mx.Host, "."), c.Hostname) {
			return nil
		}
	}
	return fmt.Errorf("no MX of %s names %s", c.Domain, c.Hostname)
}

func checkSPF(ctx context.Context, r Resolver, name, want string) error {
	txts, err := lookupTXT(ctx, r, name)
	if err != nil {
		return err
	}
	var spf []string
	for _, t := range txts {
		if strings.HasPrefix(strings.ToLower(t), "v=spf1 ") {
			spf = append(spf, t)
		}
	}
	switch len(spf) {
	case 0:
		return fmt.Errorf("no SPF record at %s", name)
	case 1:
	default:
		return fmt.Errorf("%d SPF records at %s (RFC 7208 allows one)", len(spf), name)
	}
	have := strings.Fields(strings.ToLower(spf[0]))
	for _, m := range strings.Fields(strings.ToLower(want)) {
		if m == "~all" || m == "v=spf1" {
			continue
		}
		if !slices.Contains(have, m) && !slices.Contains(have, "+"+m) && !slices.ContainsFunc(have, func(h string) bool { return strings.HasPrefix(h, "include:") }) {
			return fmt.Errorf("SPF %q does not allow %s", spf[0], m)
		}
	}
	return nil
}

func checkDMARC(ctx context.Context, r Resolver, name string) error {
	txts, err := lookupTXT(ctx, r, name)
	if err != nil {
		return err
	}
	for _, t := range txts {
		tags := tagList(t)
		if tags["v"] == "DMARC1" && tags["p"] != "" {
			return nil
		}
	}
	return fmt.Errorf("no DMARC record (v=DMARC1; p=...) at %s", name)
}

func checkDKIM(ctx context.Context, r Resolver, name, want string) error {
	txts, err := lookupTXT(ctx, r, name)
	if err != nil {
		return err
	}
	wp := tagList(want)["p"]
	for _, t := range txts {
		if p := tagList(t)["p"]; p == wp {
			return nil
		} else if p != "" {
			return fmt.Errorf("%s holds another public key than the key file's", name)
		}
	}
	return fmt.Errorf("no DKIM key at %s", name)
}

// tagList parses "k=v; k=v" (DKIM, DMARC), without white space in values.
func tagList(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			m[strings.TrimSpace(k)] = strings.Join(strings.Fields(v), "")
		}
	}
	return m
}

func checkCert(c *config.Config, now time.Time) error {
	data, err := os.ReadFile(c.TLS.CertFile)
	if err != nil {
		return fmt.Errorf("read certificate: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return fmt.Errorf("%s holds no PEM certificate", c.TLS.CertFile)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return fmt.Errorf("parse %s: %w", c.TLS.CertFile, err)
	}
	if err := cert.VerifyHostname(c.Hostname); err != nil {
		return fmt.Errorf("certificate is not for %s: %w", c.Hostname, err)
	}
	if left := cert.NotAfter.Sub(now); left < 14*24*time.Hour {
		return fmt.Errorf("certificate expires %s", cert.NotAfter.UTC().Format(time.DateOnly))
	}
	return nil
}

func checkProjectKey(k *crypto.Key, now time.Time) error {
	if k == nil {
		return fmt.Errorf("no project key")
	}
	if exp := k.Expires(); !exp.IsZero() && exp.Sub(now) < 30*24*time.Hour {
		return fmt.Errorf("project key %s expires %s", k.Fingerprint(), exp.UTC().Format(time.DateOnly))
	}
	return nil
}

func checkSecurityTxt(ctx context.Context, o DoctorOptions, url string) error {
	hc := o.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("security.txt: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s: %s", url, resp.Status)
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<10))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "Expires") {
			continue
		}
		exp, err := time.Parse(time.RFC3339, strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%s: Expires %q is not RFC 3339", url, strings.TrimSpace(v))
		}
		if exp.Sub(o.Now) < 30*24*time.Hour {
			return fmt.Errorf("%s expires %s", url, exp.UTC().Format(time.DateOnly))
		}
		return nil
	}
	return fmt.Errorf("%s has no Expires field", url)
}

func checkDelivery(ctx context.Context, c *config.Config, o DoctorOptions) error {
	switch c.Delivery.Mode {
	case "outbox":
		return fmt.Errorf("mode outbox: mail is only written to %s, nothing leaves", c.Delivery.OutboxDir)
	case "smarthost":
		if o.CheckRelay == nil {
			return fmt.Errorf("smarthost %s not checked", c.Delivery.Smarthost)
		}
		if err := o.CheckRelay(ctx); err != nil {
			return fmt.Errorf("smarthost %s: %w", c.Delivery.Smarthost, err)
		}
	}
	return nil
}

func deliveryFix(c *config.Config) string {
	if c.Delivery.Mode == "outbox" {
		return "set [delivery] mode = \"smarthost\" (with smarthost, username, password_file) or \"mx\""
	}
	return "check [delivery] smarthost, tls, username and password_file against the relay's settings"
}

func checkDisk(dir string, min uint64) error {
	if min == 0 {
		min = 1 << 30
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	free := st.Bavail * uint64(st.Bsize)
	if free < min {
		return fmt.Errorf("%d MiB free in %s", free>>20, dir)
	}
	return nil
}
