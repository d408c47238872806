// Package mailauth checks who sent a received message: SPF for the
// envelope sender and the HELO name (RFC 7208), DKIM signatures (RFC 6376)
// and DMARC alignment of the From domain (RFC 7489). The outcome is data,
// Results, rendered as an Authentication-Results value (RFC 8601). It knows
// nothing of incidents or lists; DNS goes through a resolver it is given.
package mailauth

import (
	"bufio"
	"bytes"
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"strings"
	"time"
	"unicode"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"
)

// Result values, as in Authentication-Results.
const (
	None      = "none"
	Pass      = "pass"
	Fail      = "fail"
	SoftFail  = "softfail"
	Neutral   = "neutral"
	TempError = "temperror"
	PermError = "permerror"
)

// Results is what cvd found out about a message's sender.
type Results struct {
	// AuthServID names the host that checked (cvd's hostname).
	AuthServID string `json:"id,omitempty"`
	// SPF is the result for the envelope sender MailFrom.
	SPF      string `json:"spf,omitempty"`
	MailFrom string `json:"mailfrom,omitempty"`
	// HeloSPF is the result for the HELO name Helo.
	HeloSPF string `json:"helo_spf,omitempty"`
	Helo    string `json:"helo,omitempty"`
	// DKIM has one entry per signature checked.
	DKIM []DKIM `json:"dkim,omitempty"`
	// DMARC is the result for the From header's domain FromDomain.
	DMARC      string `json:"dmarc,omitempty"`
	FromDomain string `json:"from_domain,omitempty"`
}

// DKIM is the result of one DKIM signature.
type DKIM struct {
	Result     string `json:"result"`
	Domain     string `json:"d,omitempty"`
	Identifier string `json:"i,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

// Checked reports whether the message was checked at all (messages spooled
// before cvd checked senders were not).
func (r Results) Checked() bool { return r.AuthServID != "" }

// AuthenticatedFor reports whether the message proves that addr sent it:
// DMARC passed for addr's domain as the From domain, or SPF passed for an
// envelope sender equal to addr.
func (r Results) AuthenticatedFor(addr string) bool {
	addr = normalize(addr)
	_, domain, ok := strings.Cut(addr, "@")
	if !ok || domain == "" {
		return false
	}
	if r.DMARC == Pass && r.FromDomain == domain {
		return true
	}
	return r.SPF == Pass && r.MailFrom != "" && normalize(r.MailFrom) == addr
}

// normalize lowercases an address's domain (local parts stay as they are).
func normalize(addr string) string {
	addr = strings.Trim(strings.TrimSpace(addr), "<>")
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	return addr[:at] + "@" + strings.ToLower(strings.TrimSuffix(addr[at+1:], "."))
}

// String renders the results as an Authentication-Results value.
func (r Results) String() string {
	if !r.Checked() {
		return ""
	}
	var rs []authres.Result
	if r.SPF != "" {
		rs = append(rs, &authres.SPFResult{Value: authres.ResultValue(r.SPF), From: clean(r.MailFrom)})
	}
	if r.HeloSPF != "" {
		rs = append(rs, &authres.SPFResult{Value: authres.ResultValue(r.HeloSPF), Helo: clean(r.Helo)})
	}
	if len(r.DKIM) == 0 {
		rs = append(rs, &authres.GenericResult{Method: "dkim", Value: authres.ResultNone})
	}
	for _, d := range r.DKIM {
		rs = append(rs, &authres.DKIMResult{Value: authres.ResultValue(d.Result), Reason: clean(d.Reason),
			Domain: clean(d.Domain), Identifier: clean(d.Identifier)})
	}
	if r.DMARC != "" {
		rs = append(rs, &authres.DMARCResult{Value: authres.ResultValue(r.DMARC), From: clean(r.FromDomain)})
	}
	return strings.TrimSpace(strings.ReplaceAll(authres.Format(clean(r.AuthServID), rs), " ;", ";"))
}

// clean keeps a value on one line of printable characters (no controls,
// no bidirectional overrides).
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// Value stores Results in a database column (JSON; "" when unchecked).
func (r Results) Value() (driver.Value, error) {
	if !r.Checked() {
		return "", nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// Scan reads Results from a database column.
func (r *Results) Scan(v any) error {
	var b []byte
	switch v := v.(type) {
	case nil:
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("mailauth: cannot scan %T", v)
	}
	*r = Results{}
	if len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, r)
}

// NewResolver returns a resolver that asks the DNS server at addr
// (HOST:PORT), or the system's resolver when addr is "".
func NewResolver(addr string) *net.Resolver {
	if addr == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// Checker checks received messages.
type Checker struct {
	// AuthServID names this host in Authentication-Results.
	AuthServID string
	// Resolver answers the DNS queries; net.DefaultResolver when nil.
	Resolver *net.Resolver
	// Timeout bounds one message's checks (default 20s); what is not
	// answered by then is a temperror.
	Timeout time.Duration
}

// maxSignatures bounds the DKIM signatures verified per message.
const maxSignatures = 5

// Check checks a message received from remoteAddr (HOST:PORT) that said
// HELO helo, with envelope sender mailFrom ("" for the null sender).
func (c *Checker) Check(ctx context.Context, remoteAddr, helo, mailFrom string, raw []byte) Results {
	return c.CheckReader(ctx, remoteAddr, helo, mailFrom, func() io.Reader { return bytes.NewReader(raw) })
}

// CheckReader is Check for a message that open reads from its start
// (called once for each pass over it).
func (c *Checker) CheckReader(ctx context.Context, remoteAddr, helo, mailFrom string, open func() io.Reader) Results {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := c.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	r := Results{AuthServID: c.AuthServID, Helo: strings.ToLower(helo), MailFrom: normalize(mailFrom)}

	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	opts := []spf.Option{spf.WithResolver(res), spf.WithContext(ctx)}
	heloIsName := r.Helo != "" && net.ParseIP(strings.Trim(r.Helo, "[]")) == nil && strings.Contains(r.Helo, ".")
	if heloIsName {
		v, _ := spf.CheckHostWithSender(ip, r.Helo, "postmaster@"+r.Helo, opts...)
		r.HeloSPF = string(v)
	}
	if r.MailFrom != "" {
		v, _ := spf.CheckHostWithSender(ip, r.Helo, r.MailFrom, opts...)
		r.SPF = string(v)
	} else if heloIsName {
		// RFC 7208 2.4: the null sender is checked as postmaster@HELO.
		r.SPF, r.MailFrom = r.HeloSPF, "postmaster@"+r.Helo
	}

	lookupTXT := func(name string) ([]string, error) { return res.LookupTXT(ctx, name) }
	verifs, err := dkim.VerifyWithOptions(open(), &dkim.VerifyOptions{LookupTXT: lookupTXT, MaxVerifications: maxSignatures})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		r.DKIM = append(r.DKIM, DKIM{Result: PermError, Reason: "unreadable message"})
	}
	for _, v := range verifs {
		d := DKIM{Result: Pass, Domain: strings.ToLower(v.Domain), Identifier: v.Identifier}
		switch {
		case v.Err == nil:
		case dkim.IsTempFail(v.Err):
			d.Result, d.Reason = TempError, "key unavailable"
		case dkim.IsPermFail(v.Err):
			d.Result, d.Reason = PermError, "malformed signature or key"
		default:
			d.Result, d.Reason = Fail, "signature does not verify"
		}
		r.DKIM = append(r.DKIM, d)
	}

	r.DMARC, r.FromDomain = c.dmarc(open(), r, lookupTXT)
	return r
}

// dmarc checks the alignment of the From domain with the passing SPF and
// DKIM identities against the domain's DMARC policy.
func (c *Checker) dmarc(msg io.Reader, r Results, lookupTXT func(string) ([]string, error)) (result, domain string) {
	h, err := textproto.ReadHeader(bufio.NewReader(msg))
	if err != nil {
		return PermError, ""
	}
	froms := h.Values("From")
	if len(froms) != 1 {
		return PermError, ""
	}
	addrs, err := mail.ParseAddressList(froms[0])
	if err != nil || len(addrs) != 1 {
		return PermError, ""
	}
	_, domain, _ = strings.Cut(normalize(addrs[0].Address), "@")
	if domain == "" {
		return PermError, ""
	}
	opts := &dmarc.LookupOptions{LookupTXT: lookupTXT}
	rec, err := dmarc.LookupWithOptions(domain, opts)
	if errors.Is(err, dmarc.ErrNoPolicy) || isNotFound(err) {
		if org := orgDomain(domain); org != domain {
			rec, err = dmarc.LookupWithOptions(org, opts)
		}
	}
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy) || isNotFound(err):
		return None, domain
	case dmarc.IsTempFail(err) || isTemporary(err):
		return TempError, domain
	case err != nil:
		return PermError, domain
	}
	for _, d := range r.DKIM {
		if d.Result == Pass && aligned(d.Domain, domain, rec.DKIMAlignment) {
			return Pass, domain
		}
	}
	if _, mfDomain, ok := strings.Cut(r.MailFrom, "@"); ok && r.SPF == Pass && aligned(mfDomain, domain, rec.SPFAlignment) {
		return Pass, domain
	}
	return Fail, domain
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

func isTemporary(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && (de.IsTimeout || de.IsTemporary)
}

// aligned compares an authenticated domain with the From domain: equal in
// strict mode, the same organizational domain in relaxed mode.
func aligned(authDomain, fromDomain string, mode dmarc.AlignmentMode) bool {
	authDomain = strings.ToLower(strings.TrimSuffix(authDomain, "."))
	if mode == dmarc.AlignmentStrict {
		return authDomain == fromDomain
	}
	return orgDomain(authDomain) == orgDomain(fromDomain)
}

// orgDomain is the organizational domain (RFC 7489 3.2): one label below
// the public suffix.
func orgDomain(d string) string {
	if org, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
		return org
	}
	return d
}
