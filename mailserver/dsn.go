package mailserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"regexp"
	"strings"

	"github.com/emersion/go-message"
)

// ErrNotBounce is returned by ParseBounce for a message that is neither a
// delivery status notification nor a recognisable plain bounce.
var ErrNotBounce = errors.New("not a bounce")

// Bounce is what a delivery status notification reports.
type Bounce struct {
	// DSN is true for an RFC 3464 report (multipart/report with a
	// message/delivery-status part); false for a plain bounce read by
	// heuristics.
	DSN          bool
	ReportingMTA string
	Recipients   []BounceRecipient
}

// BounceRecipient is the report on one recipient.
type BounceRecipient struct {
	FinalRecipient    string
	OriginalRecipient string // as given in RCPT TO, when reported
	// Action is "failed", "delayed", "delivered", "relayed" or "expanded"
	// (RFC 3464); plain bounces are "failed".
	Action string
	// Status is the RFC 3463 code, e.g. "5.1.1"; "5.0.0" when a plain
	// bounce gives none.
	Status     string
	Diagnostic string
}

// Addr is the address cvd sent to: the original recipient when reported,
// else the final one.
func (r BounceRecipient) Addr() string {
	if r.OriginalRecipient != "" {
		return r.OriginalRecipient
	}
	return r.FinalRecipient
}

// Permanent reports whether delivery to the recipient failed for good:
// an RFC 3464 "failed" action whatever its status code (a relay that gave
// up after retrying reports 4.x.x), or, with no action, a 5.x.x status.
func (r BounceRecipient) Permanent() bool {
	return r.Action == "failed" || r.Action == "" && strings.HasPrefix(r.Status, "5")
}

// BounceToken finds the VERP token a bounce belongs to: from the envelope
// recipient it was sent to (security+bounce-TOKEN@domain), else, for a
// bounce forwarded under another address, from a return path quoted in
// the bounce (most quote the returned message's header).
func BounceToken(envelopeRcpt string, raw []byte, domain string) (string, bool) {
	if tok, ok := VERPToken(envelopeRcpt, domain); ok {
		return tok, true
	}
	re := regexp.MustCompile(`(?i)` + regexp.QuoteMeta(VERPPrefix) + `([a-z2-7]{16})@` + regexp.QuoteMeta(domain) + `\b`)
	if m := re.FindSubmatch(raw); m != nil {
		return strings.ToLower(string(m[1])), true
	}
	return "", false
}

// ParseBounce reads a bounce: an RFC 3464 delivery status notification,
// or, on a best-effort basis, a plain-text bounce (X-Failed-Recipients,
// SMTP replies in the text). It never decrypts or follows anything.
func ParseBounce(raw []byte) (*Bounce, error) {
	raw = skipMboxFrom(raw)
	ent, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, fmt.Errorf("parse bounce: %w", err)
	}
	var status []byte
	var texts [][]byte
	walkErr := walk(ent, 0, &status, &texts)
	if status == nil {
		// Some reports have malformed MIME (e.g. an indented boundary);
		// look for the part in the raw text.
		status = rawDeliveryStatus(raw)
	}
	if status != nil {
		b := parseDeliveryStatus(status)
		if len(b.Recipients) > 0 {
			return b, nil
		}
	}
	if walkErr != nil && len(texts) == 0 {
		return nil, fmt.Errorf("parse bounce: %w", walkErr)
	}
	return plainBounce(ent.Header, texts)
}

func skipMboxFrom(raw []byte) []byte {
	if bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			return raw[i+1:]
		}
	}
	return raw
}

// walk collects the delivery-status part and the human-readable text
// parts, not descending into returned messages.
func walk(e *message.Entity, depth int, status *[]byte, texts *[][]byte) error {
	if depth > 10 {
		return nil
	}
	t, _, _ := e.Header.ContentType()
	switch {
	case t == "message/delivery-status" || t == "message/global-delivery-status":
		b, err := io.ReadAll(io.LimitReader(e.Body, 1<<20))
		if *status == nil {
			*status = b
		}
		return err
	case strings.HasPrefix(t, "multipart/"):
		mr := e.MultipartReader()
		if mr == nil {
			return nil
		}
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
				return err
			}
			if err := walk(p, depth+1, status, texts); err != nil {
				return err
			}
		}
	case t == "text/plain" || t == "":
		b, err := io.ReadAll(io.LimitReader(e.Body, 1<<20))
		*texts = append(*texts, b)
		return err
	}
	return nil
}

var rawStatusRE = regexp.MustCompile(`(?i)content-type:\s*message/(global-)?delivery-status[^\n]*\n`)

func rawDeliveryStatus(raw []byte) []byte {
	loc := rawStatusRE.FindIndex(raw)
	if loc == nil {
		return nil
	}
	rest := bytes.ReplaceAll(raw[loc[1]:], []byte("\r\n"), []byte("\n"))
	// Skip the part's remaining header lines.
	if i := bytes.Index(rest, []byte("\n\n")); i >= 0 && !bytes.HasPrefix(rest, []byte("\n")) {
		rest = rest[i+2:]
	}
	var out []byte
	for line := range bytes.Lines(rest) {
		if bytes.HasPrefix(bytes.TrimSpace(line), []byte("--")) {
			break
		}
		out = append(out, line...)
	}
	return out
}

// parseDeliveryStatus reads the per-message and per-recipient field
// groups of a message/delivery-status body (RFC 3464 section 2).
func parseDeliveryStatus(body []byte) *Bounce {
	b := &Bounce{DSN: true}
	for _, group := range fieldGroups(body) {
		if mta := group["reporting-mta"]; mta != "" {
			b.ReportingMTA = afterType(mta)
		}
		final, orig := afterType(group["final-recipient"]), afterType(group["original-recipient"])
		if final == "" && orig == "" {
			continue
		}
		status := group["status"]
		if f := strings.Fields(status); len(f) > 0 {
			status = f[0]
		}
		b.Recipients = append(b.Recipients, BounceRecipient{
			FinalRecipient:    final,
			OriginalRecipient: orig,
			Action:            strings.ToLower(strings.TrimSpace(group["action"])),
			Status:            status,
			Diagnostic:        afterType(group["diagnostic-code"]),
		})
	}
	return b
}

// fieldGroups splits header-like text into groups at blank lines, each a
// map of lowercased field name to unfolded value (first occurrence).
func fieldGroups(body []byte) []map[string]string {
	var groups []map[string]string
	cur := map[string]string{}
	last := ""
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.TrimSpace(line) == "":
			if len(cur) > 0 {
				groups = append(groups, cur)
				cur = map[string]string{}
			}
			last = ""
		case (line[0] == ' ' || line[0] == '\t') && last != "":
			cur[last] += " " + strings.TrimSpace(line)
		default:
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				last = ""
				continue
			}
			last = strings.ToLower(strings.TrimSpace(name))
			if _, seen := cur[last]; seen {
				last = ""
				continue
			}
			cur[last] = strings.TrimSpace(value)
		}
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}

// afterType drops the "rfc822;" / "smtp;" / "dns;" type of a DSN field.
func afterType(v string) string {
	if t, rest, ok := strings.Cut(v, ";"); ok && !strings.ContainsAny(t, " @") {
		return strings.TrimSpace(rest)
	}
	return strings.TrimSpace(v)
}

var (
	bounceSubjectRE = regexp.MustCompile(`(?i)undeliver|delivery (status notification|failure|has failed)|returned mail|mail delivery failed|failure notice|non[- ]?delivery`)
	enhancedRE      = regexp.MustCompile(`\b([245])\.(\d{1,3})\.(\d{1,3})\b`)
	replyCodeRE     = regexp.MustCompile(`\b([45])\d\d[ -]`)
	lineAddrRE      = regexp.MustCompile(`^\s*<?([A-Za-z0-9.!#$%&'*+/=?^_{|}~-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})>?(\s|:|$)`)
	// Where a plain bounce starts quoting the returned message.
	returnedRE = regexp.MustCompile(`(?im)^.*(this is a copy of the message|below this line is a copy|original message follows|^return-path:|^received:).*$`)
)

// plainBounce reads a bounce without a DSN part, best effort.
func plainBounce(h message.Header, texts [][]byte) (*Bounce, error) {
	from := strings.ToLower(h.Get("From"))
	subject := h.Get("Subject")
	if dec, err := new(mime.WordDecoder).DecodeHeader(subject); err == nil {
		subject = dec
	}
	failed := h.Get("X-Failed-Recipients")
	isBounce := failed != "" || strings.Contains(from, "mailer-daemon") || strings.Contains(from, "postmaster") || bounceSubjectRE.MatchString(subject)
	if !isBounce {
		return nil, ErrNotBounce
	}
	var text string
	for _, t := range texts {
		if loc := returnedRE.FindIndex(t); loc != nil {
			t = t[:loc[0]]
		}
		text += string(t) + "\n"
	}
	status, diag := "", ""
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if m := enhancedRE.FindStringSubmatch(line); m != nil && (m[1] == "4" || m[1] == "5") {
			status, diag = m[0], line
			break
		}
		if m := replyCodeRE.FindStringSubmatch(line); m != nil && status == "" {
			status, diag = m[1]+".0.0", line
		}
	}
	if status == "" {
		status = "5.0.0"
	}
	var addrs []string
	for _, a := range strings.Split(failed, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		seen := map[string]bool{}
		for line := range strings.Lines(text) {
			if m := lineAddrRE.FindStringSubmatch(line); m != nil && !seen[strings.ToLower(m[1])] {
				seen[strings.ToLower(m[1])] = true
				addrs = append(addrs, m[1])
			}
		}
	}
	if len(addrs) == 0 {
		return nil, ErrNotBounce
	}
	// A plain bounce with only a 4xx code may be a delay warning: it is
	// not taken as a failure.
	action := "failed"
	if !strings.HasPrefix(status, "5") {
		action = "delayed"
	}
	b := &Bounce{}
	for _, a := range addrs {
		b.Recipients = append(b.Recipients, BounceRecipient{FinalRecipient: a, Action: action, Status: status, Diagnostic: diag})
	}
	return b, nil
}
