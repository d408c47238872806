package mailserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// maxMessagesPerConn bounds the transactions on one connection.
const maxMessagesPerConn = 1000

// permError is a failure that makes every recipient of the job fail at once
// (a domain with a null MX, or one that does not exist).
type permError struct{ reply string }

func (e *permError) Error() string { return e.reply }

// smtpSender delivers over SMTP to the smarthost or to a domain's MX,
// keeping the connection between jobs.
type smtpSender struct {
	w      *DeliveryWorker
	domain string // MX mode: the destination domain
	c      *smtp.Client
	host   string
	uses   int
	pipe   *pipeline // set when the server offers PIPELINING
}

func (s *smtpSender) started(j *job) bool {
	return s.pipe != nil && s.pipe.pending == j
}

func (s *smtpSender) close() {
	if s.pipe != nil && s.pipe.pending != nil {
		// A transaction was started and will not be finished.
		s.drop()
	}
	if s.c != nil {
		s.c.Quit()
		s.c.Close()
		s.c, s.pipe = nil, nil
	}
}

func (s *smtpSender) drop() {
	if s.c != nil {
		s.c.Close()
		s.c, s.pipe = nil, nil
	}
}

func all(n int, st rcptStatus) []rcptStatus {
	out := make([]rcptStatus, n)
	for i := range out {
		out[i] = st
	}
	return out
}

// replyText formats an SMTP error as the reply line an operator expects.
func replyText(host string, err error) string {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		code := ""
		if se.EnhancedCode != (smtp.EnhancedCode{}) && se.EnhancedCode != smtp.NoEnhancedCode {
			code = fmt.Sprintf(" %d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
		}
		return fmt.Sprintf("%s: %d%s %s", host, se.Code, code, strings.ReplaceAll(se.Message, "\n", " "))
	}
	return fmt.Sprintf("%s: %v", host, err)
}

// statusOf classifies an error of MAIL, RCPT or DATA. broken means the
// connection can no longer be used.
func statusOf(host string, err error) (st rcptStatus, broken bool) {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return rcptStatus{perm: se.Code >= 500, reply: replyText(host, err)}, se.Code == 421
	}
	return rcptStatus{reply: replyText(host, err)}, true
}

func (s *smtpSender) send(ctx context.Context, j *job, next func() *job) []rcptStatus {
	n := len(j.rcpts)
	if ctx.Err() != nil {
		if s.started(j) {
			s.drop()
		}
		return all(n, rcptStatus{abort: true})
	}
	if s.c == nil {
		c, conn, host, err := s.w.connect(ctx, s.domain)
		if err != nil {
			if ctx.Err() != nil {
				return all(n, rcptStatus{abort: true})
			}
			var pe *permError
			if errors.As(err, &pe) {
				return all(n, rcptStatus{perm: true, reply: pe.reply})
			}
			return all(n, rcptStatus{reply: err.Error()})
		}
		s.c, s.host, s.uses = c, host, 0
		s.pipe = newPipeline(c, conn, s.w.opts.CommandTimeout)
	}
	// Shutdown past its grace period closes the connection under way.
	c := s.c
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	// The next job's transaction may start with this message's content,
	// unless this connection ends after this message.
	var more func() (*job, string, *smtp.MailOptions)
	if s.pipe != nil && next != nil && s.uses+1 < maxMessagesPerConn {
		more = func() (*job, string, *smtp.MailOptions) {
			nj := next()
			if nj == nil {
				return nil, "", nil
			}
			s.w.sign(nj)
			if nj.batch.readErr != nil {
				return nil, "", nil
			}
			from, opts, refused := s.envelope(nj)
			if refused != nil {
				return nil, "", nil
			}
			return nj, from, opts
		}
	}
	out, broken := s.transaction(ctx, j, more)
	if ctx.Err() != nil {
		for i := range out {
			if !out[i].ok {
				out[i] = rcptStatus{abort: true}
			}
		}
		broken = true
	}
	s.uses++
	switch {
	case broken:
		s.drop()
	case s.uses >= maxMessagesPerConn:
		s.close()
	}
	return out
}

// envelope returns j's return path and MAIL parameters, or, for a job
// this session cannot carry, the statuses of its recipients.
func (s *smtpSender) envelope(j *job) (string, *smtp.MailOptions, []rcptStatus) {
	from := ReturnPath(j.rcpts[0].Token, s.w.opts.Domain)
	opts := &smtp.MailOptions{Size: j.batch.wireLen()}
	if needsSMTPUTF8(j) {
		if ok, _ := s.c.Extension("SMTPUTF8"); !ok {
			return "", nil, all(len(j.rcpts), rcptStatus{perm: true, reply: s.host + ": does not offer SMTPUTF8 (RFC 6531), which this internationalised address or header needs"})
		}
		opts.UTF8 = true
	}
	return from, opts, nil
}

// transaction runs MAIL, RCPT... and DATA for one job; more is for
// pipeline.transaction.
func (s *smtpSender) transaction(ctx context.Context, j *job, more func() (*job, string, *smtp.MailOptions)) (out []rcptStatus, broken bool) {
	c, host := s.c, s.host
	n := len(j.rcpts)
	if s.started(j) {
		return s.pipe.transaction(ctx, host, "", nil, j, more)
	}
	from, opts, refused := s.envelope(j)
	if refused != nil {
		return refused, false
	}
	if s.pipe != nil {
		return s.pipe.transaction(ctx, host, from, opts, j, more)
	}
	if err := c.Mail(from, opts); err != nil {
		st, broken := statusOf(host, err)
		if !broken {
			broken = c.Reset() != nil
		}
		return all(n, st), broken
	}
	out = make([]rcptStatus, n)
	var accepted []int
	for i, r := range j.rcpts {
		if err := c.Rcpt(r.Addr, nil); err != nil {
			st, broken := statusOf(host, err)
			out[i] = st
			if broken {
				for k := i + 1; k < n; k++ {
					out[k] = st
				}
				for _, k := range accepted {
					out[k] = st
				}
				return out, true
			}
			continue
		}
		accepted = append(accepted, i)
	}
	if len(accepted) == 0 {
		return out, c.Reset() != nil
	}
	fail := func(err error) ([]rcptStatus, bool) {
		st, broken := statusOf(host, err)
		for _, k := range accepted {
			out[k] = st
		}
		if !broken {
			broken = c.Reset() != nil
		}
		return out, broken
	}
	wc, err := c.Data()
	if err != nil {
		return fail(err)
	}
	if _, err := wc.Write(j.batch.dkim); err != nil {
		wc.Close()
		return fail(err)
	}
	if err := j.batch.each(ctx, func(p []byte) error {
		_, err := wc.Write(p)
		return err
	}); err != nil {
		if isReadError(err) {
			// Closing wc would end the message: the server must not
			// take what was sent of it.
			st, _ := statusOf(host, err)
			for _, k := range accepted {
				out[k] = st
			}
			return out, true
		}
		wc.Close()
		return fail(err)
	}
	resp, err := wc.CloseWithResponse()
	if err != nil {
		return fail(err)
	}
	reply := host + ": 250 " + strings.ReplaceAll(resp.StatusText, "\n", " ")
	for _, k := range accepted {
		out[k] = rcptStatus{ok: true, reply: reply}
	}
	return out, false
}

// connect opens an SMTP session, said hello to and (for the smarthost)
// authenticated, to the smarthost or to domain's MX.
func (w *DeliveryWorker) connect(ctx context.Context, domain string) (*smtp.Client, net.Conn, string, error) {
	if w.opts.Mode == ModeSmarthost {
		host, _, _ := net.SplitHostPort(w.opts.Smarthost)
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if w.opts.TLSConfig != nil {
			cfg = w.opts.TLSConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		c, conn, err := w.dialSMTP(ctx, w.opts.Smarthost, w.opts.SmarthostTLS, cfg)
		if err != nil {
			return nil, nil, "", fmt.Errorf("smarthost %s: %w", w.opts.Smarthost, err)
		}
		w.learnSize(c)
		if w.opts.Username != "" {
			if err := w.auth(c, host); err != nil {
				c.Close()
				return nil, nil, "", fmt.Errorf("smarthost %s: %w", w.opts.Smarthost, err)
			}
		}
		return c, conn, w.opts.Smarthost, nil
	}

	hosts, err := w.mxHosts(ctx, domain)
	if err != nil {
		return nil, nil, "", err
	}
	verify, hosts, err := w.tlsPolicy(ctx, domain, hosts)
	if err != nil {
		return nil, nil, "", err
	}
	var errs []string
	for _, h := range hosts {
		addr := net.JoinHostPort(h, strconv.Itoa(w.opts.MXPort))
		if verify != "" {
			cfg := &tls.Config{ServerName: h, RootCAs: w.opts.MXRootCAs, MinVersion: tls.VersionTLS12}
			c, conn, err := w.dialSMTP(ctx, addr, "starttls", cfg)
			if err == nil {
				return c, conn, h, nil
			}
			errs = append(errs, fmt.Sprintf("%s: %v", h, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		// Opportunistic TLS: certificates of MX hosts are not checked (as
		// Postfix's "may" level); embargoed content is PGP-encrypted anyway.
		cfg := &tls.Config{ServerName: h, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
		c, conn, err := w.dialSMTP(ctx, addr, "may", cfg)
		if err != nil && isTLSError(err) {
			w.log.Warn("STARTTLS failed; delivering without TLS", "host", h, "err", err)
			c, conn, err = w.dialSMTP(ctx, addr, "none", nil)
		}
		if err == nil {
			return c, conn, h, nil
		}
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound && len(hosts) == 1 {
			return nil, nil, "", &permError{fmt.Sprintf("%s: 550 5.1.2 host %s not found", domain, h)}
		}
		errs = append(errs, fmt.Sprintf("%s: %v", h, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, nil, "", fmt.Errorf("no MX host of %s reachable: %s", domain, strings.Join(errs, "; "))
}

// tlsPolicy says whether delivery to domain needs verified TLS (the
// reason, "" when not) and which of its MX hosts may be used.
func (w *DeliveryWorker) tlsPolicy(ctx context.Context, domain string, hosts []string) (string, []string, error) {
	for _, d := range w.opts.RequireTLS {
		if strings.EqualFold(d, domain) {
			return "require_tls", hosts, nil
		}
	}
	if w.opts.MTASTS == nil {
		return "", hosts, nil
	}
	p, err := w.opts.MTASTS.Policy(ctx, domain)
	if err != nil {
		w.log.Warn("MTA-STS policy not available; delivering opportunistically", "domain", domain, "err", err)
		return "", hosts, nil
	}
	if p == nil || p.Mode == "none" {
		return "", hosts, nil
	}
	var ok []string
	for _, h := range hosts {
		if p.Matches(h) {
			ok = append(ok, h)
		}
	}
	if p.Mode == "testing" {
		if len(ok) < len(hosts) {
			w.log.Warn("MTA-STS testing: MX host outside the policy", "domain", domain, "hosts", hosts, "policy", p.MX)
		}
		return "", hosts, nil
	}
	if len(ok) == 0 {
		return "", nil, fmt.Errorf("MTA-STS: no MX host of %s matches its policy %v", domain, p.MX)
	}
	return "mta-sts", ok, nil
}

type tlsError struct{ err error }

func (e *tlsError) Error() string { return "TLS handshake: " + e.err.Error() }
func (e *tlsError) Unwrap() error { return e.err }

func isTLSError(err error) bool {
	var te *tlsError
	return errors.As(err, &te)
}

// mxHosts returns domain's MX hosts by preference; the domain itself when
// it has no MX record (RFC 5321 5.1).
func (w *DeliveryWorker) mxHosts(ctx context.Context, domain string) ([]string, error) {
	mxs, err := w.opts.Resolver.LookupMX(ctx, domain)
	var dnsErr *net.DNSError
	if err != nil && errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return []string{domain}, nil
	}
	if err != nil && len(mxs) == 0 {
		return nil, fmt.Errorf("MX lookup for %s: %w", domain, err)
	}
	if len(mxs) == 0 {
		return []string{domain}, nil
	}
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].Pref < mxs[j].Pref })
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		return nil, &permError{fmt.Sprintf("%s: 556 5.1.10 domain accepts no mail (null MX)", domain)}
	}
	hosts := make([]string, 0, len(mxs))
	for _, mx := range mxs {
		if h := strings.TrimSuffix(mx.Host, "."); h != "" {
			hosts = append(hosts, h)
		}
	}
	return hosts, nil
}

// dialSMTP connects to addr and says EHLO. tlsMode is "tls" (implicit),
// "starttls" (required), "may" (STARTTLS when offered) or "none". It also
// returns the connection the client speaks over.
func (w *DeliveryWorker) dialSMTP(ctx context.Context, addr, tlsMode string, cfg *tls.Config) (*smtp.Client, net.Conn, error) {
	d := net.Dialer{Timeout: w.opts.ConnectTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	switch tlsMode {
	case "tls":
		tc := tls.Client(conn, cfg)
		hctx, cancel := context.WithTimeout(ctx, w.opts.ConnectTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			conn.Close()
			return nil, nil, &tlsError{err}
		}
		conn = tc
	case "starttls", "may":
		conn, err = w.startTLS(ctx, conn, tlsMode == "starttls", cfg)
		if err != nil {
			return nil, nil, err
		}
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout = w.opts.CommandTimeout
	c.SubmissionTimeout = w.opts.CommandTimeout
	if err := c.Hello(w.opts.Hostname); err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, conn, nil
}

// startTLS reads the greeting, says EHLO with cvd's own name and, if the
// server offers it, runs STARTTLS. go-smtp's client has no StartTLS method
// and its DialStartTLS says "EHLO localhost", which some MX hosts refuse.
// The returned connection replays a greeting so that smtp.NewClient can
// start its session (with a second EHLO, as RFC 3207 requires after TLS).
func (w *DeliveryWorker) startTLS(ctx context.Context, conn net.Conn, required bool, cfg *tls.Config) (net.Conn, error) {
	conn.SetDeadline(time.Now().Add(w.opts.CommandTimeout))
	br := bufio.NewReader(conn)
	tp := textproto.NewReader(br)
	fail := func(err error) (net.Conn, error) {
		conn.Close()
		var pe *textproto.Error
		if errors.As(err, &pe) {
			return nil, &smtp.SMTPError{Code: pe.Code, Message: pe.Msg}
		}
		return nil, err
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		return fail(err)
	}
	if _, err := fmt.Fprintf(conn, "EHLO %s\r\n", w.opts.Hostname); err != nil {
		return fail(err)
	}
	_, msg, err := tp.ReadResponse(250)
	if err != nil {
		return fail(err)
	}
	offered := false
	for _, line := range strings.Split(msg, "\n")[1:] {
		if strings.EqualFold(strings.TrimSpace(line), "STARTTLS") {
			offered = true
		}
	}
	if !offered {
		if required {
			return fail(errors.New("server does not offer STARTTLS"))
		}
		conn.SetDeadline(time.Time{})
		return &greetedConn{Conn: conn, r: br, greeting: []byte("220 resumed\r\n")}, nil
	}
	if _, err := io.WriteString(conn, "STARTTLS\r\n"); err != nil {
		return fail(err)
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		if required {
			return fail(err)
		}
		return fail(&tlsError{err})
	}
	conn.SetDeadline(time.Time{})
	tc := tls.Client(conn, cfg)
	hctx, cancel := context.WithTimeout(ctx, w.opts.ConnectTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		conn.Close()
		return nil, &tlsError{err}
	}
	return &greetedConn{Conn: tc, r: tc, greeting: []byte("220 resumed\r\n")}, nil
}

// greetedConn replays a 220 greeting before the connection's own data.
type greetedConn struct {
	net.Conn
	r interface {
		Read([]byte) (int, error)
	}
	greeting []byte
}

func (c *greetedConn) Read(p []byte) (int, error) {
	if len(c.greeting) > 0 {
		n := copy(p, c.greeting)
		c.greeting = c.greeting[n:]
		return n, nil
	}
	return c.r.Read(p)
}

// auth authenticates with PLAIN, or LOGIN when PLAIN is not offered. It
// refuses to send the password in clear text except to a loopback host.
func (w *DeliveryWorker) auth(c *smtp.Client, host string) error {
	if _, isTLS := c.TLSConnectionState(); !isTLS {
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return errors.New("refusing AUTH without TLS; set delivery.tls to \"starttls\" or \"tls\"")
		}
	}
	var a sasl.Client
	switch {
	case c.SupportsAuth("PLAIN"):
		a = sasl.NewPlainClient("", w.opts.Username, w.opts.Password)
	case c.SupportsAuth("LOGIN"):
		a = sasl.NewLoginClient(w.opts.Username, w.opts.Password)
	default:
		return errors.New("the smarthost offers neither AUTH PLAIN nor AUTH LOGIN")
	}
	if err := c.Auth(a); err != nil {
		return fmt.Errorf("AUTH as %s: %w", w.opts.Username, err)
	}
	return nil
}

// outboxSender writes each recipient's copy to the Maildir, with the
// envelope as Return-Path and Delivered-To.
type outboxSender struct{ w *DeliveryWorker }

func (o *outboxSender) close() {}

func (o *outboxSender) started(*job) bool { return false }

func (o *outboxSender) send(ctx context.Context, j *job, _ func() *job) []rcptStatus {
	out := make([]rcptStatus, len(j.rcpts))
	for i, r := range j.rcpts {
		if ctx.Err() != nil {
			out[i] = rcptStatus{abort: true}
			continue
		}
		hdr := "Return-Path: <" + ReturnPath(r.Token, o.w.opts.Domain) + ">\r\nDelivered-To: " + r.Addr + "\r\n"
		name, err := o.w.opts.Outbox.DeliverFrom(o.w.opts.Now(), func(write func([]byte) error) error {
			if err := write([]byte(hdr)); err != nil {
				return err
			}
			if err := write(j.batch.dkim); err != nil {
				return err
			}
			return j.batch.each(ctx, write)
		})
		if err != nil {
			out[i] = rcptStatus{reply: err.Error()}
			continue
		}
		out[i] = rcptStatus{ok: true, reply: "outbox: " + name}
	}
	return out
}

// needsSMTPUTF8 reports whether a job carries an internationalised
// address (RFC 6531) or UTF-8 in its header (RFC 6532).
func needsSMTPUTF8(j *job) bool {
	for _, r := range j.rcpts {
		if !isASCII(r.Addr) {
			return true
		}
	}
	if j.batch.streamed() {
		return j.batch.utf8Head
	}
	head := j.batch.Raw
	if i := bytes.Index(head, []byte("\r\n\r\n")); i >= 0 {
		head = head[:i]
	}
	return !isASCII(string(head))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
