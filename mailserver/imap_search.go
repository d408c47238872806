package mailserver

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func writeLiteral(wc io.WriteCloser, b []byte) error {
	_, werr := wc.Write(b)
	cerr := wc.Close()
	if werr != nil {
		return werr
	}
	return cerr
}

func envelope(raw []byte) *imap.Envelope {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return &imap.Envelope{}
	}
	return imapserver.ExtractEnvelope(h)
}

// Search answers SEARCH and UID SEARCH over the selected mailbox. Criteria
// on headers and text read the messages as stored: for sealed copies that
// is the outer header only, never the protected content.
func (s *imapSession) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	if err := s.checkSelected("search"); err != nil {
		return nil, err
	}
	sel := s.sel
	s.staticCriteria(criteria)
	match := make([]bool, len(sel.msgs))
	if needsRaw(criteria) {
		uids := make([]uint32, len(sel.msgs))
		pos := make(map[uint32]int, len(sel.msgs))
		for i, m := range sel.msgs {
			uids[i] = m.UID
			pos[m.UID] = i
		}
		ctx, cancel := context.WithTimeout(s.srv.ctx, imapOpTimeout+time.Duration(len(uids))*time.Millisecond)
		defer cancel()
		err := s.srv.backend.Bodies(ctx, s.account, sel.name, uids, func(uid uint32, raw []byte) error {
			i := pos[uid]
			match[i] = matchMessage(&sel.msgs[i], uint32(i+1), raw, criteria)
			return nil
		})
		if err != nil {
			return nil, s.fail("search", sel.name, err)
		}
	} else {
		for i := range sel.msgs {
			match[i] = matchMessage(&sel.msgs[i], uint32(i+1), nil, criteria)
		}
	}
	data := &imap.SearchData{}
	var seqs imap.SeqSet
	var uids imap.UIDSet
	for i, ok := range match {
		if !ok {
			continue
		}
		uid := sel.msgs[i].UID
		uids.AddNum(imap.UID(uid))
		num := uid
		if kind == imapserver.NumKindSeq {
			num = uint32(i + 1)
			seqs.AddNum(num)
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		if num > data.Max {
			data.Max = num
		}
		data.Count++
	}
	if kind == imapserver.NumKindSeq {
		data.All = seqs
	} else {
		data.All = uids
	}
	if options.ReturnSave {
		sel.search = uids
	}
	return data, nil
}

// staticCriteria makes "*" and "$" in the criteria concrete.
func (s *imapSession) staticCriteria(c *imap.SearchCriteria) {
	sel := s.sel
	var seqs []imap.SeqSet
	for _, set := range c.SeqNum {
		if imap.IsSearchRes(set) {
			c.UID = append(c.UID, sel.search)
			continue
		}
		var static imap.SeqSet
		for _, r := range set {
			a, b := staticRange(r.Start, r.Stop, uint32(len(sel.msgs)))
			static = append(static, imap.SeqRange{Start: a, Stop: b})
		}
		seqs = append(seqs, static)
	}
	c.SeqNum = seqs
	var max uint32
	if n := len(sel.msgs); n > 0 {
		max = sel.msgs[n-1].UID
	}
	for i, set := range c.UID {
		if imap.IsSearchRes(set) {
			c.UID[i] = sel.search
			continue
		}
		var static imap.UIDSet
		for _, r := range set {
			a, b := staticRange(uint32(r.Start), uint32(r.Stop), max)
			static = append(static, imap.UIDRange{Start: imap.UID(a), Stop: imap.UID(b)})
		}
		c.UID[i] = static
	}
	for i := range c.Not {
		s.staticCriteria(&c.Not[i])
	}
	for i := range c.Or {
		s.staticCriteria(&c.Or[i][0])
		s.staticCriteria(&c.Or[i][1])
	}
}

func needsRaw(c *imap.SearchCriteria) bool {
	if len(c.Header) > 0 || len(c.Body) > 0 || len(c.Text) > 0 || !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		return true
	}
	for i := range c.Not {
		if needsRaw(&c.Not[i]) {
			return true
		}
	}
	for i := range c.Or {
		if needsRaw(&c.Or[i][0]) || needsRaw(&c.Or[i][1]) {
			return true
		}
	}
	return false
}

func matchMessage(m *IMAPMessage, seq uint32, raw []byte, c *imap.SearchCriteria) bool {
	for _, set := range c.SeqNum {
		if !set.Contains(seq) {
			return false
		}
	}
	for _, set := range c.UID {
		if !set.Contains(imap.UID(m.UID)) {
			return false
		}
	}
	if !matchDate(m.Date, c.Since, c.Before) {
		return false
	}
	for _, f := range c.Flag {
		if !hasFlag(m.Flags, f) {
			return false
		}
	}
	for _, f := range c.NotFlag {
		if hasFlag(m.Flags, f) {
			return false
		}
	}
	if c.Larger != 0 && m.Size <= c.Larger {
		return false
	}
	if c.Smaller != 0 && m.Size >= c.Smaller {
		return false
	}
	if raw != nil && (len(c.Header) > 0 || !c.SentSince.IsZero() || !c.SentBefore.IsZero() || len(c.Text) > 0 || len(c.Body) > 0) {
		e, err := gomessage.Read(bytes.NewReader(raw))
		if e == nil {
			return false
		}
		_ = err // unknown charsets and the like still give a usable entity
		h := mail.Header{Header: e.Header}
		for _, hc := range c.Header {
			if !matchFields(h.FieldsByKey(hc.Key), hc.Value) {
				return false
			}
		}
		if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
			t, err := h.Date()
			if err != nil || !matchDate(t, c.SentSince, c.SentBefore) {
				return false
			}
		}
		for _, t := range c.Text {
			if !matchEntity(raw, t, true) {
				return false
			}
		}
		for _, t := range c.Body {
			if !matchEntity(raw, t, false) {
				return false
			}
		}
	}
	for i := range c.Not {
		if matchMessage(m, seq, raw, &c.Not[i]) {
			return false
		}
	}
	for i := range c.Or {
		if !matchMessage(m, seq, raw, &c.Or[i][0]) && !matchMessage(m, seq, raw, &c.Or[i][1]) {
			return false
		}
	}
	return true
}

// matchDate compares dates without time of day or zone (RFC 3501 6.4.4).
func matchDate(t, since, before time.Time) bool {
	t = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if !since.IsZero() && t.Before(since) {
		return false
	}
	if !before.IsZero() && !t.Before(before) {
		return false
	}
	return true
}

func matchFields(fields gomessage.HeaderFields, pattern string) bool {
	if pattern == "" {
		return fields.Len() > 0
	}
	pattern = strings.ToLower(pattern)
	for fields.Next() {
		v, _ := fields.Text()
		if strings.Contains(strings.ToLower(v), pattern) {
			return true
		}
	}
	return false
}

// matchEntity looks for pattern in the text parts of a message (and its
// header fields when withHeader).
func matchEntity(raw []byte, pattern string, withHeader bool) bool {
	e, _ := gomessage.Read(bytes.NewReader(raw))
	if e == nil {
		return false
	}
	return entityContains(e, strings.ToLower(pattern), withHeader, 0)
}

func entityContains(e *gomessage.Entity, pattern string, withHeader bool, depth int) bool {
	if pattern == "" {
		return true
	}
	if withHeader && matchFields(e.Header.Fields(), pattern) {
		return true
	}
	if mr := e.MultipartReader(); mr != nil {
		if depth > 20 {
			return false
		}
		for {
			p, err := mr.NextPart()
			if err != nil {
				return false
			}
			if entityContains(p, pattern, withHeader, depth+1) {
				return true
			}
		}
	}
	t, _, _ := e.Header.ContentType()
	if t == "" {
		t = "text/plain" // RFC 2045 5.2
	}
	if !strings.HasPrefix(t, "text/") && !strings.HasPrefix(t, "message/") {
		return false
	}
	b, err := io.ReadAll(io.LimitReader(e.Body, 16<<20))
	if err != nil {
		return false
	}
	return bytes.Contains(bytes.ToLower(b), []byte(pattern))
}
