// Package ops holds operations over a configuration: the DNS records a
// domain needs (cvd dns) and the checks of a live setup (cvd doctor).
package ops

import (
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/mailserver"
)

// Record is one DNS record the domain should publish.
type Record struct {
	// Item names the check this record belongs to (mx, spf, dkim/SELECTOR,
	// dmarc, mta-sts, tls-rpt).
	Item  string
	Name  string // fully qualified, with the final dot
	Type  string // MX, TXT
	Value string // as in a zone file (TXT quoted)
	// Optional records are printed commented out.
	Optional bool
	Note     string
}

// Zone is the record in zone-file syntax.
func (r Record) Zone() string {
	return r.Name + " 3600 IN " + r.Type + " " + r.Value
}

// takesInternetMail reports whether cvd listens on port 25 itself.
func takesInternetMail(c *config.Config) bool {
	_, port, err := net.SplitHostPort(c.SMTP.Listen)
	return err == nil && port == "25"
}

// SPF is the SPF record value for c's delivery mode.
func SPF(c *config.Config) string {
	if c.Delivery.Mode == "smarthost" {
		host, _, _ := net.SplitHostPort(c.Delivery.Smarthost)
		return "v=spf1 a:" + host + " ~all"
	}
	return "v=spf1 a:" + c.Hostname + " ~all"
}

// DMARC is the DMARC record value cvd recommends to start with.
const DMARC = "v=DMARC1; p=none; adkim=r; aspf=r"

// Records lists the records c's domain needs. The DKIM records are read
// from the key files.
func Records(c *config.Config) ([]Record, error) {
	d := c.Domain + "."
	var rs []Record
	mx := Record{Item: "mx", Name: d, Type: "MX", Value: "10 " + c.Hostname + ".",
		Note: "mail for " + c.Domain + " reaches cvd (smtp.listen is on port 25)"}
	if !takesInternetMail(c) {
		mx.Optional = true
		mx.Note = "only when cvd takes mail from the Internet itself; behind an MTA keep that MTA's MX"
	}
	rs = append(rs, mx)
	spf := Record{Item: "spf", Name: d, Type: "TXT", Value: mailserver.SplitTXT(SPF(c)),
		Note: "the hosts that send " + c.Domain + "'s mail"}
	if c.Delivery.Mode == "smarthost" {
		spf.Note += "; if your relay's provider documents an include: mechanism, use it instead of a:"
	}
	rs = append(rs, spf)
	if c.DKIM.Enabled {
		for _, k := range c.DKIM.Keys {
			s, err := mailserver.LoadDKIMKey(k.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("[dkim] %s key: %w", k.Kind, err)
			}
			v, err := mailserver.DKIMRecord(s)
			if err != nil {
				return nil, err
			}
			rs = append(rs, Record{Item: "dkim/" + k.Selector, Name: k.Selector + "._domainkey." + d, Type: "TXT",
				Value: mailserver.SplitTXT(v), Note: "DKIM " + k.Kind + " public key (" + k.KeyFile + ")"})
		}
	}
	rs = append(rs, Record{Item: "dmarc", Name: "_dmarc." + d, Type: "TXT", Value: mailserver.SplitTXT(DMARC),
		Note: "start with p=none; once reports show all of " + c.Domain + "'s mail passing, move to p=quarantine"})
	rs = append(rs,
		Record{Item: "mta-sts", Name: "_mta-sts." + d, Type: "TXT", Value: `"v=STSv1; id=1"`, Optional: true,
			Note: "MTA-STS (RFC 8461): also serve https://mta-sts." + c.Domain + "/.well-known/mta-sts.txt; raise id on every policy change"},
		Record{Item: "tls-rpt", Name: "_smtp._tls." + d, Type: "TXT", Value: `"v=TLSRPTv1; rua=mailto:postmaster@` + c.Domain + `"`, Optional: true,
			Note: "TLS reports (RFC 8460)"})
	return rs, nil
}

// PrintRecords writes the records as a zone-file fragment, with the web
// expectations as comments.
func PrintRecords(w io.Writer, c *config.Config, rs []Record) {
	fmt.Fprintf(w, "; DNS records for %s (cvd dns). Paste into the zone; check with 'cvd doctor'.\n", c.Domain)
	for _, r := range rs {
		fmt.Fprintf(w, "\n; %s: %s\n", r.Item, r.Note)
		if r.Optional {
			fmt.Fprintf(w, "; %s\n", r.Zone())
		} else {
			fmt.Fprintln(w, r.Zone())
		}
	}
	base := c.Web.BaseURL
	if base == "" {
		base = "https://" + c.Domain
	}
	fmt.Fprintf(w, "\n; Web (served by cvd's web listener, or copied by 'cvd site'):\n")
	fmt.Fprintf(w, ";   %s/.well-known/security.txt must be cvd's security.txt (RFC 9116), Expires in the future\n", base)
	fmt.Fprintf(w, ";   https://%s/.well-known/openpgpkey/hu/... (WKD direct method) must serve the project key,\n", c.Domain)
	fmt.Fprintf(w, ";   or openpgpkey.%s must point to a host serving the advanced method\n", c.Domain)
	if c.Delivery.Mode == "mx" {
		fmt.Fprintf(w, ";   the reverse DNS (PTR) of this server's address should be %s\n", c.Hostname)
	}
}

// unquoteTXT joins the quoted strings of a zone-file TXT value.
func unquoteTXT(v string) string {
	var b strings.Builder
	in := false
	for i := 0; i < len(v); i++ {
		switch ch := v[i]; {
		case ch == '\\' && in && i+1 < len(v):
			i++
			b.WriteByte(v[i])
		case ch == '"':
			in = !in
		case in:
			b.WriteByte(ch)
		}
	}
	return b.String()
}
