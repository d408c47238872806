package mailserver

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// imapOpTimeout bounds one backend call.
const imapOpTimeout = 30 * time.Second

// imapDelim is the mailbox hierarchy delimiter.
const imapDelim = '/'

// imapSession is one IMAP connection. go-imap runs its commands one at a
// time; only IDLE runs Poll on another goroutine while the connection
// waits for DONE.
type imapSession struct {
	srv     *IMAPServer
	conn    *imapserver.Conn
	ip      string
	log     *slog.Logger
	account string
	sel     *selectedBox

	wake         chan struct{}
	newMail      atomic.Bool
	flagsChanged atomic.Bool
}

// selectedBox is the selected mailbox as the client knows it: message i
// has sequence number i+1. Archive mailboxes only grow, so the view only
// grows too.
type selectedBox struct {
	name     string
	readOnly bool // EXAMINE
	msgs     []IMAPMessage
	uidNext  uint32
	search   imap.UIDSet // SEARCHRES
}

var _ imapserver.SessionNamespace = (*imapSession)(nil)

func (s *imapSession) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *imapSession) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.srv.ctx, imapOpTimeout)
}

// Errors as the client sees them. Every refusal is one of these, or made
// by fail; the precise reason goes to the log.
var (
	errIMAPNoMailbox = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such mailbox"}
	errIMAPInternal  = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Internal error; try again later"}
	errIMAPTLS       = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodePrivacyRequired, Text: "TLS is required to log in: use STARTTLS or port 993"}
	errIMAPTooMany   = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Too many failed logins; try again later"}
	errIMAPExamine   = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "The mailbox was opened with EXAMINE: flags cannot be changed"}
	errIMAPNoSel     = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNoPerm, Text: "Access to this mailbox was withdrawn"}
)

// readOnly is the refusal of anything that would change an archive.
func readOnly(what string) *imap.Error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
		Text: "cvd's mailboxes are read-only archives: " + what + " is refused"}
}

// fail turns an error into the reply the client gets, logging the detail.
func (s *imapSession) fail(op, mailbox string, err error) error {
	var ie *imap.Error
	switch {
	case errors.As(err, &ie):
		return ie
	case errors.Is(err, ErrMailboxForbidden):
		s.log.Warn("imap access refused: not the account's mailbox", "op", op, "mailbox", mailbox)
		return errIMAPNoMailbox
	case errors.Is(err, ErrNoMailbox):
		s.log.Info("imap no such mailbox", "op", op, "mailbox", mailbox)
		return errIMAPNoMailbox
	default:
		s.log.Error("imap "+op, "mailbox", mailbox, "err", err)
		return errIMAPInternal
	}
}

// Close ends the session.
func (s *imapSession) Close() error {
	s.srv.unregister(s)
	return nil
}

func (s *imapSession) tlsOK() bool {
	if _, ok := s.conn.NetConn().(*tls.Conn); ok {
		return true
	}
	return s.srv.opts.InsecureLoopbackAuth && isLoopback(s.ip)
}

// Login checks credentials, over TLS only (or loopback when allowed), with
// failed attempts limited per account and per address.
func (s *imapSession) Login(username, password string) error {
	if !s.tlsOK() {
		s.log.Warn("imap login refused without TLS")
		return errIMAPTLS
	}
	user := strings.ToLower(strings.TrimSpace(username))
	now := s.srv.opts.Now()
	if which := s.srv.limiter.blocked(user, s.ip, now); which != "" {
		s.log.Warn("imap login refused: too many failures", "user", user, "limit", which)
		s.delay()
		return errIMAPTooMany
	}
	ctx, cancel := s.ctx()
	defer cancel()
	account, err := s.srv.backend.Authenticate(ctx, user, password)
	if errors.Is(err, ErrIMAPAuth) {
		s.srv.limiter.fail(user, s.ip, now)
		s.log.Warn("imap login failed", "user", user)
		s.delay()
		return imapserver.ErrAuthFailed
	}
	if err != nil {
		return s.fail("login", "", err)
	}
	s.srv.limiter.success(user, s.ip)
	s.account = account
	s.log = s.log.With("user", account)
	s.srv.register(s)
	s.log.Info("imap login")
	return nil
}

func (s *imapSession) delay() {
	if d := s.srv.opts.FailDelay; d > 0 {
		select {
		case <-time.After(d):
		case <-s.srv.ctx.Done():
		}
	}
}

// canonicalMailbox makes INBOX case-insensitive (RFC 3501 5.1).
func canonicalMailbox(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return name
}

// Select opens a mailbox: the view is loaded once and then only grows.
func (s *imapSession) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	name = canonicalMailbox(name)
	s.sel = nil
	ctx, cancel := s.ctx()
	defer cancel()
	st, err := s.srv.backend.Status(ctx, s.account, name)
	if err != nil {
		return nil, s.fail("select", name, err)
	}
	msgs, err := s.srv.backend.Messages(ctx, s.account, name, 0)
	if err != nil {
		return nil, s.fail("select", name, err)
	}
	sel := &selectedBox{name: name, readOnly: options.ReadOnly, msgs: msgs, uidNext: st.UIDNext}
	if n := len(msgs); n > 0 && msgs[n-1].UID >= sel.uidNext {
		sel.uidNext = msgs[n-1].UID + 1
	}
	s.sel = sel
	s.newMail.Store(false)
	s.flagsChanged.Store(false)
	data := &imap.SelectData{
		Flags:       []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDraft},
		NumMessages: uint32(len(msgs)),
		UIDNext:     imap.UID(sel.uidNext),
		UIDValidity: st.UIDValidity,
	}
	if !options.ReadOnly {
		data.PermanentFlags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDraft, imap.FlagWildcard}
	} else {
		data.PermanentFlags = []imap.Flag{}
	}
	for i, m := range msgs {
		if !hasFlag(m.Flags, imap.FlagSeen) {
			data.FirstUnseenSeqNum = uint32(i + 1)
			break
		}
	}
	s.log.Debug("imap select", "mailbox", name, "messages", len(msgs), "read_only", options.ReadOnly)
	return data, nil
}

// Unselect closes the mailbox.
func (s *imapSession) Unselect() error {
	s.sel = nil
	return nil
}

// Create, Delete and Rename are refused: the mailboxes are cvd's.
func (s *imapSession) Create(mailbox string, options *imap.CreateOptions) error {
	s.log.Info("imap refused", "op", "create", "mailbox", mailbox)
	return readOnly("CREATE")
}

func (s *imapSession) Delete(mailbox string) error {
	s.log.Info("imap refused", "op", "delete", "mailbox", mailbox)
	return readOnly("DELETE")
}

func (s *imapSession) Rename(mailbox, newName string, options *imap.RenameOptions) error {
	s.log.Info("imap refused", "op", "rename", "mailbox", mailbox)
	return readOnly("RENAME")
}

// Subscribe accepts the account's mailboxes, which are always subscribed.
func (s *imapSession) Subscribe(mailbox string) error {
	mailbox = canonicalMailbox(mailbox)
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.srv.backend.Access(ctx, s.account, mailbox); err != nil {
		return s.fail("subscribe", mailbox, err)
	}
	return nil
}

// Unsubscribe is refused: every mailbox of the account stays subscribed.
func (s *imapSession) Unsubscribe(mailbox string) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "cvd's mailboxes are always subscribed"}
}

// Namespace: one personal namespace.
func (s *imapSession) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: imapDelim}}}, nil
}

// List answers LIST and LSUB: the account's mailboxes, with "Incidents"
// as a non-selectable parent.
func (s *imapSession) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if options == nil {
		// go-imap passes options for LIST and LSUB; a plain LIST has none.
		options = &imap.ListOptions{}
	}
	ctx, cancel := s.ctx()
	defer cancel()
	names, err := s.srv.backend.Mailboxes(ctx, s.account)
	if err != nil {
		return s.fail("list", "", err)
	}
	type entry struct {
		name   string
		attrs  []imap.MailboxAttr
		noSel  bool
		parent bool
	}
	var entries []entry
	parents := map[string]bool{}
	for _, n := range names {
		if i := strings.LastIndexByte(n, imapDelim); i > 0 && !parents[n[:i]] {
			parents[n[:i]] = true
			entries = append(entries, entry{name: n[:i], noSel: true, parent: true})
		}
		entries = append(entries, entry{name: n})
	}
	sort.SliceStable(entries, func(i, j int) bool {
		if entries[i].name == "INBOX" || entries[j].name == "INBOX" {
			return entries[i].name == "INBOX" && entries[j].name != "INBOX"
		}
		return entries[i].name < entries[j].name
	})
	if options.SelectSpecialUse {
		return nil
	}
	written := map[string]bool{}
	for _, p := range patterns {
		if p == "" && !options.SelectSubscribed {
			// RFC 3501 6.3.8: the hierarchy delimiter.
			if err := w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: imapDelim}); err != nil {
				return err
			}
			continue
		}
		for _, e := range entries {
			if written[e.name] || (e.noSel && options.SelectSubscribed) || !imapserver.MatchList(e.name, imapDelim, ref, p) {
				continue
			}
			written[e.name] = true
			d := &imap.ListData{Mailbox: e.name, Delim: imapDelim}
			if e.noSel {
				d.Attrs = append(d.Attrs, imap.MailboxAttrNoSelect, imap.MailboxAttrHasChildren)
			} else {
				d.Attrs = append(d.Attrs, imap.MailboxAttrHasNoChildren)
			}
			if options.SelectSubscribed || options.ReturnSubscribed {
				if !e.noSel {
					d.Attrs = append(d.Attrs, imap.MailboxAttrSubscribed)
				}
			}
			if options.ReturnStatus != nil && !e.noSel {
				st, err := s.srv.backend.Status(ctx, s.account, e.name)
				if err != nil {
					return s.fail("list-status", e.name, err)
				}
				d.Status = statusData(e.name, st, options.ReturnStatus)
			}
			if err := w.WriteList(d); err != nil {
				return err
			}
		}
	}
	return nil
}

func statusData(name string, st *IMAPStatus, options *imap.StatusOptions) *imap.StatusData {
	d := &imap.StatusData{Mailbox: name}
	if options == nil {
		return d
	}
	if options.NumMessages {
		d.NumMessages = &st.Messages
	}
	if options.UIDNext {
		d.UIDNext = imap.UID(st.UIDNext)
	}
	if options.UIDValidity {
		d.UIDValidity = st.UIDValidity
	}
	if options.NumUnseen {
		d.NumUnseen = &st.Unseen
	}
	if options.NumDeleted {
		var zero uint32
		d.NumDeleted = &zero
	}
	if options.Size {
		d.Size = &st.Size
	}
	if options.NumRecent {
		var zero uint32
		d.NumRecent = &zero
	}
	return d
}

// Status answers STATUS.
func (s *imapSession) Status(mailbox string, options *imap.StatusOptions) (*imap.StatusData, error) {
	mailbox = canonicalMailbox(mailbox)
	ctx, cancel := s.ctx()
	defer cancel()
	st, err := s.srv.backend.Status(ctx, s.account, mailbox)
	if err != nil {
		return nil, s.fail("status", mailbox, err)
	}
	return statusData(mailbox, st, options), nil
}

// Append is refused: nothing is added to an archive by a client.
func (s *imapSession) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	s.log.Info("imap refused", "op", "append", "mailbox", mailbox)
	return nil, readOnly("APPEND")
}

// Copy is refused: every destination is a read-only archive.
func (s *imapSession) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	s.log.Info("imap refused", "op", "copy", "mailbox", dest)
	return nil, readOnly("COPY")
}

// Expunge is refused; CLOSE (which go-imap turns into an expunge with a
// writer that writes nothing) succeeds, as no message can be \Deleted.
func (s *imapSession) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	if *w == (imapserver.ExpungeWriter{}) {
		return nil
	}
	s.log.Info("imap refused", "op", "expunge", "mailbox", s.selName())
	return readOnly("EXPUNGE")
}

func (s *imapSession) selName() string {
	if s.sel == nil {
		return ""
	}
	return s.sel.name
}

// Poll reports what changed in the selected mailbox since the last
// command: new messages (EXISTS) and flags changed by another session of
// the same account. It costs nothing when nothing was signalled.
func (s *imapSession) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if s.sel == nil {
		return nil
	}
	if s.newMail.Swap(false) {
		// Notify wakes every session for mail to any mailbox: only
		// growth of the selected one is reported, so that a session
		// never learns of traffic elsewhere.
		n := len(s.sel.msgs)
		if err := s.loadNew(); err != nil {
			return err
		}
		if len(s.sel.msgs) > n {
			if err := w.WriteNumMessages(uint32(len(s.sel.msgs))); err != nil {
				return err
			}
		}
	}
	if s.flagsChanged.Swap(false) {
		ctx, cancel := s.ctx()
		defer cancel()
		flags, err := s.srv.backend.Flags(ctx, s.account, s.sel.name)
		if err != nil {
			return s.revoked(err)
		}
		for i := range s.sel.msgs {
			m := &s.sel.msgs[i]
			f := flags[m.UID]
			if !sameFlags(m.Flags, f) {
				m.Flags = f
				if err := w.WriteMessageFlags(uint32(i+1), imap.UID(m.UID), toFlags(f)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// loadNew appends the messages added since the view was loaded.
func (s *imapSession) loadNew() error {
	var after uint32
	if n := len(s.sel.msgs); n > 0 {
		after = s.sel.msgs[n-1].UID
	}
	ctx, cancel := s.ctx()
	defer cancel()
	msgs, err := s.srv.backend.Messages(ctx, s.account, s.sel.name, after)
	if err != nil {
		return s.revoked(err)
	}
	s.sel.msgs = append(s.sel.msgs, msgs...)
	if n := len(s.sel.msgs); n > 0 && s.sel.msgs[n-1].UID >= s.sel.uidNext {
		s.sel.uidNext = s.sel.msgs[n-1].UID + 1
	}
	return nil
}

// revoked ends a session whose selected mailbox is no longer readable
// (the member was removed): the client gets BYE at once.
func (s *imapSession) revoked(err error) error {
	if errors.Is(err, ErrMailboxForbidden) || errors.Is(err, ErrNoMailbox) {
		s.log.Warn("imap access withdrawn while selected", "mailbox", s.sel.name)
		s.sel = nil
		if berr := s.conn.Bye("Access to this mailbox was withdrawn"); berr != nil {
			s.log.Debug("imap bye", "err", berr)
		}
		return errIMAPNoSel
	}
	return s.fail("poll", s.selName(), err)
}

// Idle waits for new messages and flag changes until stop is closed.
func (s *imapSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	for {
		if err := s.Poll(w, true); err != nil {
			return err
		}
		select {
		case <-s.wake:
		case <-stop:
			return nil
		}
	}
}

// checkSelected confirms the account may still read the selected mailbox.
func (s *imapSession) checkSelected(op string) error {
	if s.sel == nil {
		return errIMAPNoSel
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.srv.backend.Access(ctx, s.account, s.sel.name); err != nil {
		if errors.Is(err, ErrMailboxForbidden) || errors.Is(err, ErrNoMailbox) {
			return s.revoked(err)
		}
		return s.fail(op, s.sel.name, err)
	}
	return nil
}

// indexes returns the view positions numSet names, ascending.
func (sel *selectedBox) indexes(numSet imap.NumSet) []int {
	if imap.IsSearchRes(numSet) {
		numSet = sel.search
	}
	n := len(sel.msgs)
	var out []int
	switch set := numSet.(type) {
	case imap.SeqSet:
		for _, r := range set {
			start, stop := staticRange(r.Start, r.Stop, uint32(n))
			if start < 1 {
				start = 1
			}
			for q := start; q <= stop && q <= uint32(n); q++ {
				out = append(out, int(q-1))
			}
		}
	case imap.UIDSet:
		var max uint32
		if n > 0 {
			max = sel.msgs[n-1].UID
		}
		for _, r := range set {
			start, stop := staticRange(uint32(r.Start), uint32(r.Stop), max)
			i := sort.Search(n, func(i int) bool { return sel.msgs[i].UID >= start })
			for ; i < n && sel.msgs[i].UID <= stop; i++ {
				out = append(out, i)
			}
		}
	}
	if len(out) > 1 {
		sort.Ints(out)
		j := 0
		for i := 1; i < len(out); i++ {
			if out[i] != out[j] {
				j++
				out[j] = out[i]
			}
		}
		out = out[:j+1]
	}
	return out
}

// staticRange replaces "*" (0) by max and orders the range.
func staticRange(start, stop, max uint32) (uint32, uint32) {
	if start == 0 {
		start = max
	}
	if stop == 0 {
		stop = max
	}
	if start > stop {
		start, stop = stop, start
	}
	return start, stop
}

// Fetch answers FETCH and UID FETCH. A body section without PEEK sets
// \Seen for the account (not after EXAMINE).
func (s *imapSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	needRaw := options.Envelope || options.BodyStructure != nil || len(options.BodySection) > 0 ||
		len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0
	if s.sel == nil {
		return errIMAPNoSel
	}
	// Bodies checks access itself; metadata comes from the view, so check
	// here.
	if !needRaw {
		if err := s.checkSelected("fetch"); err != nil {
			return err
		}
	}
	sel := s.sel
	idx := sel.indexes(numSet)
	if len(idx) == 0 {
		return nil
	}
	markSeen := false
	for _, bs := range options.BodySection {
		if !bs.Peek {
			markSeen = !sel.readOnly
		}
	}
	if markSeen {
		changed := map[uint32][]string{}
		for _, i := range idx {
			if m := &sel.msgs[i]; !hasFlag(m.Flags, imap.FlagSeen) {
				changed[m.UID] = append(append([]string(nil), m.Flags...), string(imap.FlagSeen))
			}
		}
		if err := s.setFlags(changed); err != nil {
			return err
		}
	}
	if !needRaw {
		for _, i := range idx {
			if err := s.writeFetch(w, i, nil, options, markSeen); err != nil {
				return err
			}
		}
		return nil
	}
	uids := make([]uint32, len(idx))
	pos := make(map[uint32]int, len(idx))
	for k, i := range idx {
		uids[k] = sel.msgs[i].UID
		pos[sel.msgs[i].UID] = i
	}
	ctx, cancel := context.WithTimeout(s.srv.ctx, imapOpTimeout+time.Duration(len(uids))*10*time.Millisecond)
	defer cancel()
	var werr error
	err := s.srv.backend.Bodies(ctx, s.account, sel.name, uids, func(uid uint32, raw []byte) error {
		i, ok := pos[uid]
		if !ok {
			return nil
		}
		werr = s.writeFetch(w, i, raw, options, markSeen)
		return werr
	})
	switch {
	case werr != nil:
		// The client went away: go-imap ends the connection.
		return werr
	case errors.Is(err, ErrMailboxForbidden) || errors.Is(err, ErrNoMailbox):
		return s.revoked(err)
	case err != nil:
		return s.fail("fetch", sel.name, err)
	}
	return nil
}

func (s *imapSession) writeFetch(w *imapserver.FetchWriter, i int, raw []byte, options *imap.FetchOptions, markSeen bool) error {
	m := &s.sel.msgs[i]
	rw := w.CreateMessage(uint32(i + 1))
	rw.WriteUID(imap.UID(m.UID))
	if options.Flags || markSeen {
		rw.WriteFlags(toFlags(m.Flags))
	}
	if options.InternalDate {
		rw.WriteInternalDate(m.Date)
	}
	if options.RFC822Size {
		rw.WriteRFC822Size(m.Size)
	}
	if options.Envelope {
		rw.WriteEnvelope(envelope(raw))
	}
	if options.BodyStructure != nil {
		rw.WriteBodyStructure(imapserver.ExtractBodyStructure(bytesReader(raw)))
	}
	for _, bs := range options.BodySection {
		var b []byte
		if len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierNone && bs.Partial == nil {
			b = raw // BODY[]: the message as is, no copy
		} else {
			b = imapserver.ExtractBodySection(bytesReader(raw), bs)
		}
		if err := writeLiteral(rw.WriteBodySection(bs, int64(len(b))), b); err != nil {
			return err
		}
	}
	for _, bs := range options.BinarySection {
		b := imapserver.ExtractBinarySection(bytesReader(raw), bs)
		if err := writeLiteral(rw.WriteBinarySection(bs, int64(len(b))), b); err != nil {
			return err
		}
	}
	for _, bss := range options.BinarySectionSize {
		rw.WriteBinarySectionSize(bss, imapserver.ExtractBinarySectionSize(bytesReader(raw), bss))
	}
	return rw.Close()
}

// Store changes the account's flags. \Deleted is refused (nothing can be
// expunged), and nothing changes after EXAMINE.
func (s *imapSession) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	if err := s.checkSelected("store"); err != nil {
		return err
	}
	sel := s.sel
	if sel.readOnly {
		return errIMAPExamine
	}
	var add []string
	for _, f := range flags.Flags {
		cf, err := canonicalFlag(f)
		if err != nil {
			return err
		}
		if cf == string(imap.FlagDeleted) && flags.Op != imap.StoreFlagsDel {
			s.log.Info("imap refused", "op", "store \\Deleted", "mailbox", sel.name)
			return readOnly("marking messages \\Deleted")
		}
		if cf != "" {
			add = append(add, cf)
		}
	}
	idx := sel.indexes(numSet)
	changed := map[uint32][]string{}
	for _, i := range idx {
		m := &sel.msgs[i]
		var nf []string
		switch flags.Op {
		case imap.StoreFlagsSet:
			nf = uniqueFlags(add)
		case imap.StoreFlagsAdd:
			nf = uniqueFlags(append(append([]string(nil), m.Flags...), add...))
		case imap.StoreFlagsDel:
			for _, f := range m.Flags {
				if !containsFold(add, f) {
					nf = append(nf, f)
				}
			}
		}
		if len(nf) > maxFlags {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Too many flags on one message"}
		}
		if !sameFlags(m.Flags, nf) {
			changed[m.UID] = nf
		}
	}
	if err := s.setFlags(changed); err != nil {
		return err
	}
	if flags.Silent {
		return nil
	}
	for _, i := range idx {
		m := &sel.msgs[i]
		rw := w.CreateMessage(uint32(i + 1))
		rw.WriteUID(imap.UID(m.UID))
		rw.WriteFlags(toFlags(m.Flags))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// setFlags stores flag changes, updates the view and tells the account's
// other sessions.
func (s *imapSession) setFlags(changed map[uint32][]string) error {
	if len(changed) == 0 {
		return nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.srv.backend.SetFlags(ctx, s.account, s.sel.name, changed); err != nil {
		return s.fail("store", s.sel.name, err)
	}
	for i := range s.sel.msgs {
		if f, ok := changed[s.sel.msgs[i].UID]; ok {
			s.sel.msgs[i].Flags = f
		}
	}
	s.srv.notifyFlags(s.account, s)
	return nil
}

// maxFlags and maxFlagLen bound what a client may store.
const (
	maxFlags   = 32
	maxFlagLen = 64
)

var systemFlags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft}

// canonicalFlag spells system flags canonically; keywords are kept as
// given. \Recent cannot be stored and is dropped ("").
func canonicalFlag(f imap.Flag) (string, error) {
	for _, sf := range systemFlags {
		if strings.EqualFold(string(f), string(sf)) {
			return string(sf), nil
		}
	}
	if strings.EqualFold(string(f), `\Recent`) {
		return "", nil
	}
	if strings.HasPrefix(string(f), `\`) || len(f) == 0 || len(f) > maxFlagLen {
		return "", &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Unknown or invalid flag"}
	}
	for _, r := range f {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`(){%*"\]`, r) {
			return "", &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Unknown or invalid flag"}
		}
	}
	return string(f), nil
}

func hasFlag(flags []string, f imap.Flag) bool { return containsFold(flags, string(f)) }

func containsFold(list []string, f string) bool {
	for _, x := range list {
		if strings.EqualFold(x, f) {
			return true
		}
	}
	return false
}

func uniqueFlags(fs []string) []string {
	var out []string
	for _, f := range fs {
		if !containsFold(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func sameFlags(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, f := range a {
		if !containsFold(b, f) {
			return false
		}
	}
	return true
}

func toFlags(fs []string) []imap.Flag {
	out := make([]imap.Flag, len(fs))
	for i, f := range fs {
		out[i] = imap.Flag(f)
	}
	return out
}
