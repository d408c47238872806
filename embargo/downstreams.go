package embargo

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"github.com/emersion/go-message"
	"io"
	"mime"
	"path"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/store"
	"github.com/cvd-project/cvd/templates"
)

// ListKind marks a roster entry that is an encrypted list of
// distributions (the distros list) rather than one team. Its copies have
// the SubjectPrefix ("[vs]") and neutral text as outer Subject, nobody is
// reminded (the list is not one person), its maximum embargo is a hard
// limit, and its members' replies may be accepted as its posts.
type ListKind struct {
	// MaxEmbargo is the list's maximum from the first notice (14 days
	// for the distros list).
	MaxEmbargo time.Duration
	// AcceptReplies accepts the posts of Members as downstream posts;
	// otherwise they are held for the coordinators.
	AcceptReplies bool
	// Members are the addresses (or "@domain") that post for the list.
	Members []string
}

func (k *ListKind) posts(sender string) bool {
	sender = strings.ToLower(sender)
	for _, m := range k.Members {
		if m == sender || strings.HasPrefix(m, "@") && strings.HasSuffix(sender, m) {
			return true
		}
	}
	return false
}

// rosterList returns the list kind of the roster entry email, or nil.
func (d *Desk) rosterList(email string) *ListKind {
	for _, p := range d.Roster {
		if strings.EqualFold(p.Email, email) {
			return p.List
		}
	}
	return nil
}

// PostsFor names the list-kind downstream on whose behalf sender posts to
// incident list, or "" (lists.Service.PostsFor).
func (d *Desk) PostsFor(list, sender string) string {
	for _, p := range d.Roster {
		if p.List != nil && p.List.AcceptReplies && p.List.posts(sender) {
			return strings.ToLower(p.Email)
		}
	}
	return ""
}

// hardLimit returns the list entry whose maximum embargo binds the
// incident: among the list entries it was sent to, those in sel, or, when
// it was sent to nobody yet and sel is empty, the roster's. ok is false
// when none binds.
func (o *op) hardLimit(sel []Person) (Person, bool, error) {
	ds, err := store.DownstreamsTx(o.ctx, o.tx, o.in.ID)
	if err != nil {
		return Person{}, false, err
	}
	var cand []Person
	for _, x := range ds {
		for _, p := range o.d.Roster {
			if p.List != nil && strings.EqualFold(p.Email, x.Email) {
				cand = append(cand, p)
			}
		}
	}
	for _, p := range sel {
		if p.List != nil {
			cand = append(cand, p)
		}
	}
	if len(ds) == 0 && len(sel) == 0 {
		for _, p := range o.d.Roster {
			if p.List != nil {
				cand = append(cand, p)
			}
		}
	}
	if len(cand) == 0 {
		return Person{}, false, nil
	}
	sort.SliceStable(cand, func(i, j int) bool { return cand[i].List.MaxEmbargo < cand[j].List.MaxEmbargo })
	return cand[0], true, nil
}

// checkHardLimit refuses date when it is further from the first notice
// (now, before one) than a list entry's maximum embargo allows: no
// override exceeds it.
func (o *op) checkHardLimit(date time.Time, sel []Person) error {
	p, ok, err := o.hardLimit(sel)
	if err != nil || !ok {
		return err
	}
	first := firstOr(o.in.FirstNoticeAt, o.now)
	if date.Sub(first) > p.List.MaxEmbargo {
		return refuse("the public date %s is more than %s after the first downstream notice (%s): %s (%s) is on the roster and its maximum embargo is a hard limit, no override exceeds it; the latest date is %s",
			utc(date), human(p.List.MaxEmbargo), utc(first), orDefault(p.Name, p.Email), p.Email, utc(first.Add(p.List.MaxEmbargo)))
	}
	return nil
}

// maxEmbargo is what every pre-notification states: the maximum embargo,
// the date it runs out, and whether it is a list's hard limit.
func (o *op) maxEmbargo(sel []Person) (longest time.Duration, until time.Time, hard string, err error) {
	longest = o.d.Policy.MaxEmbargo
	p, ok, err := o.hardLimit(sel)
	if err != nil {
		return 0, time.Time{}, "", err
	}
	if ok && p.List.MaxEmbargo <= longest {
		longest, hard = p.List.MaxEmbargo, orDefault(p.Name, p.Email)
	}
	return longest, firstOr(o.in.FirstNoticeAt, o.now).Add(longest), hard, nil
}

// File is a file sent with the pre-notification: a patch, a git bundle,
// a reproducer.
type File struct {
	Name        string
	ContentType string
	Data        []byte
}

// MaxFileSize bounds one attached file.
const MaxFileSize = 10 << 20

// checkFile refuses a file that cannot travel with a notice, and fills in
// its content type.
func checkFile(f *File) error {
	name := path.Base(strings.ReplaceAll(f.Name, `\`, "/"))
	if name == "" || name == "." || name == "/" || !utf8.ValidString(name) || len(name) > 200 ||
		strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '"' }) {
		return refuse("attachment %q: use a plain file name (no control characters or quotes, at most 200 bytes)", f.Name)
	}
	f.Name = name
	if len(f.Data) == 0 {
		return refuse("attachment %s is empty", name)
	}
	if len(f.Data) > MaxFileSize {
		return refuse("attachment %s is %d bytes; at most %d MiB per file (send a larger fix as a link in the notice text)", name, len(f.Data), MaxFileSize>>20)
	}
	switch ext := strings.ToLower(path.Ext(name)); {
	case ext == ".patch" || ext == ".diff":
		f.ContentType = "text/x-patch"
	case f.ContentType != "" && !strings.ContainsAny(f.ContentType, "\r\n;\""):
	case mime.TypeByExtension(ext) != "":
		f.ContentType, _, _ = strings.Cut(mime.TypeByExtension(ext), ";")
	default:
		f.ContentType = "application/octet-stream"
	}
	return nil
}

// addFiles seals each file to the project key and records it with the
// incident.
func (o *op) addFiles(files []File) ([]string, error) {
	var names []string
	for i := range files {
		f := &files[i]
		if err := checkFile(f); err != nil {
			return nil, err
		}
		var inner bytes.Buffer
		writeField(&inner, "Content-Type", "application/octet-stream")
		writeField(&inner, "Content-Transfer-Encoding", "base64")
		inner.WriteString("\r\n")
		inner.WriteString(base64Lines(f.Data))
		var outer textproto.Header
		outer.Set("From", o.d.ListAddress(o.in.ID))
		sealed, err := crypto.Seal(inner.Bytes(), outer, o.d.Key, o.d.Key, o.now)
		if err != nil {
			return nil, fmt.Errorf("seal attachment %s of %s: %w", f.Name, o.in.ID, err)
		}
		if _, err := store.AddAttachmentTx(o.ctx, o.tx, &store.Attachment{Incident: o.in.ID, Name: f.Name, ContentType: f.ContentType,
			Size: int64(len(f.Data)), Sealed: sealed, AddedAt: o.now, AddedBy: o.actor.Who}); err != nil {
			return nil, err
		}
		names = append(names, f.Name)
	}
	return names, nil
}

// storedFile is an attachment opened from the store.
type storedFile struct {
	store.Attachment
	data []byte
}

// files opens every attachment of the incident.
func (o *op) files() ([]storedFile, error) {
	as, err := store.AttachmentsTx(o.ctx, o.tx, o.in.ID)
	if err != nil {
		return nil, err
	}
	var out []storedFile
	for _, a := range as {
		op, err := crypto.Open(a.Sealed, []*crypto.Key{o.d.Key}, []*crypto.Key{o.d.Key}, o.now, o.d.Limits)
		if err != nil {
			return nil, fmt.Errorf("open attachment %s of %s: %w", a.Name, o.in.ID, err)
		}
		if op.Signature != crypto.Good {
			return nil, fmt.Errorf("attachment %s of %s: not signed by the project key (%s)", a.Name, o.in.ID, op.Signature)
		}
		_, body, _ := bytes.Cut(op.Entity, []byte("\r\n\r\n"))
		data, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(body)), ""))
		if err != nil {
			return nil, fmt.Errorf("attachment %s of %s: %w", a.Name, o.in.ID, err)
		}
		out = append(out, storedFile{Attachment: a, data: data})
	}
	return out, nil
}

func base64Lines(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	out.WriteString(s + "\r\n")
	return out.String()
}

// withFiles is m's inner entity with the files attached (multipart/mixed),
// or the plain text entity without files.
func withFiles(m *mailOut, files []storedFile) []byte {
	if len(files) == 0 {
		return m.inner()
	}
	var rb [12]byte
	rand.Read(rb[:])
	boundary := "cvd-" + hex.EncodeToString(rb[:])
	var b bytes.Buffer
	writeField(&b, "Subject", templates.EncodeHeader(m.subject))
	writeField(&b, "From", m.from)
	writeField(&b, "To", m.to)
	writeField(&b, "MIME-Version", "1.0")
	writeField(&b, "Content-Type", `multipart/mixed; boundary="`+boundary+`"`)
	b.WriteString("\r\n--" + boundary + "\r\n")
	writeField(&b, "Content-Type", "text/plain; charset=utf-8")
	writeField(&b, "Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n" + crlfBody(m.body))
	for _, f := range files {
		b.WriteString("\r\n--" + boundary + "\r\n")
		writeField(&b, "Content-Type", mime.FormatMediaType(f.ContentType, map[string]string{"name": f.Name}))
		writeField(&b, "Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.Name}))
		writeField(&b, "Content-Transfer-Encoding", "base64")
		b.WriteString("\r\n" + base64Lines(f.data))
	}
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return b.Bytes()
}

// sealNotice seals a notice with the incident's files to each selected
// member: one fan-out for the teams, and one copy per list-kind entry
// with the neutral "[vs]" outer Subject the list requires.
func (o *op) sealNotice(kind string, subject, body string, files []storedFile, keep func(recipient) bool) (sent, missed []string, err error) {
	rs, err := o.members()
	if err != nil {
		return nil, nil, err
	}
	list := o.d.ListAddress(o.in.ID)
	m := &mailOut{from: o.cvdFrom(), to: list, replyTo: list, subject: subject, body: body, messageID: newMessageID(o.d.Domain)}
	inner := withFiles(m, files)
	var to []recipient
	var teams []int
	var keys []*crypto.Key
	for _, rc := range rs {
		if keep != nil && !keep(rc) {
			continue
		}
		if rc.key == nil {
			missed = append(missed, rc.Email)
			continue
		}
		if o.d.rosterList(rc.Email) == nil {
			teams = append(teams, len(to))
			keys = append(keys, rc.key)
		}
		to = append(to, rc)
	}
	raws := make([][]byte, len(to))
	if len(teams) > 0 {
		copies, err := crypto.SealFanout(inner, m.outer(o.now, list), o.d.Key, keys, o.now)
		if err != nil {
			return nil, nil, fmt.Errorf("seal %s notice: %w", kind, err)
		}
		for i, j := range teams {
			raws[j] = copies[i]
		}
	}
	for i, rc := range to {
		if raws[i] == nil {
			outer := templates.EncodeHeader(o.d.OuterSubject(o.in.ID, rc.Email))
			copies, err := crypto.SealFanoutSubject(inner, m.outer(o.now, list), o.d.Key, []*crypto.Key{rc.key}, o.now, outer)
			if err != nil {
				return nil, nil, fmt.Errorf("seal %s notice to %s: %w", kind, rc.Email, err)
			}
			raws[i] = copies[0]
		}
		if _, err := store.EnqueueTx(o.ctx, o.tx, &store.OutMessage{Rcpts: []string{rc.Email}, Raw: raws[i], Origin: store.OriginNotice,
			Kind: kind, Ref: o.in.ID, CreatedAt: o.now}); err != nil {
			return nil, nil, err
		}
		sent = append(sent, rc.Email)
	}
	return sent, missed, nil
}

// neutralSubject is the outer Subject after the list prefix: it names the
// project, as the distros list expects, and nothing of the issue.
func (d *Desk) neutralSubject(id string) string {
	return "Upcoming " + orDefault(d.Project.Name, d.Domain) + " security fix release (" + id + ")"
}

// lateDownstream sends a downstream notified after the first notice the
// list's posts since then (what the others have), resealed to its key.
func (o *op) lateDownstream(email string) (string, error) {
	return o.d.Lists.SendBacklogSinceTx(o.ctx, o.tx, o.in.ID, email, o.in.FirstNoticeAt, o.now)
}

// recordFiles records which files each downstream received.
func (o *op) recordFiles(sent []string, files []storedFile) error {
	for _, e := range sent {
		for _, f := range files {
			if err := store.MarkAttachmentSentTx(o.ctx, o.tx, o.in.ID, e, f.ID, o.now); err != nil {
				return err
			}
		}
	}
	return nil
}

// Received returns, per downstream address, the files it received with
// its notices.
func (d *Desk) Received(ctx context.Context, id string) (map[string][]string, error) {
	var out map[string][]string
	err := d.DB.Read(ctx, func(tx *sql.Tx) (err error) {
		out, err = store.ReceivedAttachmentsTx(ctx, tx, id)
		return err
	})
	return out, err
}

// postedFiles returns the attachments of a post's content (parts with a
// file name or an attachment disposition), for x-notify.
func postedFiles(entity []byte) ([]File, error) {
	e, err := message.Read(bytes.NewReader(entity))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, refuse("the post's attachments cannot be read: %v", err)
	}
	var out []File
	err = e.Walk(func(_ []int, part *message.Entity, err error) error {
		if err != nil && !message.IsUnknownCharset(err) {
			return err
		}
		if mr := part.MultipartReader(); mr != nil {
			return nil
		}
		disp, dp, _ := part.Header.ContentDisposition()
		ct, cp, _ := part.Header.ContentType()
		name := orDefault(dp["filename"], cp["name"])
		if disp != "attachment" && name == "" {
			return nil
		}
		if ct == "application/pgp-signature" || ct == "application/pgp-keys" {
			return nil
		}
		data, err := io.ReadAll(io.LimitReader(part.Body, MaxFileSize+1))
		if err != nil {
			return err
		}
		out = append(out, File{Name: orDefault(name, "attachment"), ContentType: ct, Data: data})
		return nil
	})
	if err != nil {
		return nil, refuse("the post's attachments cannot be read: %v", err)
	}
	return out, nil
}

// hardMaxText names the roster's lists whose maximum embargo is a hard
// limit, with that maximum, for the reporter ("" when none).
func (d *Desk) hardMaxText() string {
	var out []string
	for _, p := range d.Roster {
		if p.List != nil {
			out = append(out, fmt.Sprintf("%s (%s)", orDefault(p.Name, p.Email), human(p.List.MaxEmbargo)))
		}
	}
	return strings.Join(out, ", ")
}

// OuterSubject is the outer Subject of a list-kind downstream's copies on
// an incident list ("[vs] ..."), or "" (lists.Service.OuterSubject).
func (d *Desk) OuterSubject(list, email string) string {
	if d.rosterList(email) == nil {
		return ""
	}
	return strings.TrimSpace(d.Policy.SubjectPrefix + " " + d.neutralSubject(list))
}
