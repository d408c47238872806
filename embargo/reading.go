package embargo

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"mime"
	"path"
	"strings"
	"time"

	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // posts in other charsets

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/publish"
	"github.com/cvd-project/cvd/store"
)

// ThreadPost is one post to an incident's list as the team reads it from
// the archive (the copy sealed to the project key), decrypted.
type ThreadPost struct {
	N         int
	At        time.Time
	Sender    string
	Status    string
	Encrypted bool
	Signature string
	Signer    string
	Subject   string
	// Block is cvd's header block of the post (who, signature, notes).
	Block string
	// Text is the post's own text parts, in order.
	Text string
	// Patches are its patch attachments (and a body that is a patch).
	Patches []Patch
	// NoArchive says why there is no content to read (a post of
	// commands only, a refused or duplicate post).
	NoArchive string
	// Report is true for the report that opened the incident.
	Report bool
}

// Patch is a patch attached to a post.
type Patch struct {
	Name string
	Body []byte
}

// Thread returns the posts to incident id's list, oldest first, decrypted
// from the archive.
func (d *Desk) Thread(ctx context.Context, id string) ([]ThreadPost, error) {
	var ps []store.Post
	var spool int64
	err := d.DB.Read(ctx, func(tx *sql.Tx) error {
		in, err := d.load(ctx, tx, id)
		if err != nil {
			return err
		}
		spool = in.SpoolID
		l, err := store.ListByNameTx(ctx, tx, id)
		if err != nil {
			return err
		}
		ps, err = store.PostsTx(ctx, tx, l.ID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("thread of %s: %w", id, err)
	}
	out := make([]ThreadPost, 0, len(ps))
	for i, p := range ps {
		tp, err := d.readPost(p)
		if err != nil {
			return nil, fmt.Errorf("thread of %s, post %d: %w", id, p.ID, err)
		}
		tp.N = i + 1
		tp.Report = spool != 0 && p.SpoolID == spool
		out = append(out, tp)
	}
	return out, nil
}

// OriginalReport returns the report that opened incident id, decrypted from the
// archive.
func (d *Desk) OriginalReport(ctx context.Context, id string) (ThreadPost, error) {
	var p *store.Post
	err := d.DB.Read(ctx, func(tx *sql.Tx) error {
		in, err := d.load(ctx, tx, id)
		if err != nil {
			return err
		}
		l, err := store.ListByNameTx(ctx, tx, id)
		if err != nil {
			return err
		}
		ps, err := store.PostsTx(ctx, tx, l.ID)
		if err != nil {
			return err
		}
		for i := range ps {
			if ps[i].SpoolID == in.SpoolID && in.SpoolID != 0 {
				p = &ps[i]
				return nil
			}
		}
		return store.ErrNotFound
	})
	if errors.Is(err, store.ErrNotFound) {
		return ThreadPost{}, fmt.Errorf("the report of %s is not in the archive (it opened the incident but was not posted to its list)", id)
	}
	if err != nil {
		return ThreadPost{}, fmt.Errorf("report of %s: %w", id, err)
	}
	tp, err := d.readPost(*p)
	if err != nil {
		return ThreadPost{}, fmt.Errorf("report of %s: %w", id, err)
	}
	tp.N = 1
	tp.Report = true
	// The intake posts every report for the team to read; "held" says
	// only that it came unsigned, as its header block states.
	tp.Subject = strings.TrimPrefix(tp.Subject, "[held] ")
	return tp, nil
}

func (d *Desk) readPost(p store.Post) (ThreadPost, error) {
	tp := ThreadPost{At: p.ReceivedAt, Sender: p.Sender, Status: p.Status, Encrypted: p.Encrypted, Signature: p.Signature, Signer: p.Signer}
	if len(p.Archive) == 0 {
		switch p.Status {
		case "command":
			tp.NoArchive = "keyword lines only, nothing distributed"
		default:
			tp.NoArchive = "not archived (" + p.Status + ")"
		}
		return tp, nil
	}
	o, err := crypto.Open(p.Archive, []*crypto.Key{d.Key}, []*crypto.Key{d.Key}, d.now(), d.Limits)
	if err != nil {
		return tp, fmt.Errorf("open the archive copy: %w", err)
	}
	if o.Signature != crypto.Good {
		return tp, fmt.Errorf("archive copy not signed by the project key (%s)", o.Signature)
	}
	e, err := gomessage.Read(bytes.NewReader(o.Entity))
	if err != nil && !gomessage.IsUnknownCharset(err) {
		return tp, fmt.Errorf("read the archive copy: %w", err)
	}
	tp.Subject = headerText(e.Header.Get("Subject"))
	var texts []string
	first := true
	err = e.Walk(func(_ []int, part *gomessage.Entity, err error) error {
		if err != nil && !gomessage.IsUnknownCharset(err) {
			return err
		}
		mt, params, _ := part.Header.ContentType()
		if strings.HasPrefix(mt, "multipart/") {
			return nil
		}
		disp, dparams, _ := part.Header.ContentDisposition()
		name := dparams["filename"]
		if name == "" {
			name = params["name"]
		}
		b, err := io.ReadAll(io.LimitReader(part.Body, int64(max(d.Limits.MaxPlaintextBytes, 1<<20))))
		if err != nil {
			return err
		}
		switch {
		case isPatch(mt, name, b):
			tp.Patches = append(tp.Patches, Patch{Name: path.Base(name), Body: b})
			if disp != "attachment" && name == "" {
				texts = append(texts, string(b))
			}
		case first && mt == "text/plain":
			tp.Block = strings.TrimRight(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
		case mt == "text/plain" && disp != "attachment":
			texts = append(texts, string(b))
		default:
			texts = append(texts, fmt.Sprintf("[attachment %s, %s, %d bytes]", orDefault(path.Base(name), "(no name)"), mt, len(b)))
		}
		first = false
		return nil
	})
	if err != nil {
		return tp, fmt.Errorf("read the archive copy: %w", err)
	}
	tp.Text = strings.TrimRight(strings.ReplaceAll(strings.Join(texts, "\n"), "\r\n", "\n"), "\n")
	return tp, nil
}

// isPatch reports whether an attachment holds a patch: by its type, its
// name, or a body that starts like git format-patch or diff output.
func isPatch(mt, name string, body []byte) bool {
	switch mt {
	case "text/x-patch", "text/x-diff", "text/x-git-patch", "application/x-patch":
		return true
	}
	ext := strings.ToLower(path.Ext(name))
	if ext == ".patch" || ext == ".diff" {
		return true
	}
	if name == "" {
		return false
	}
	return bytes.HasPrefix(body, []byte("From ")) && bytes.Contains(body, []byte("\ndiff --git ")) ||
		bytes.HasPrefix(body, []byte("diff --git "))
}

func headerText(v string) string {
	if s, err := new(mime.WordDecoder).DecodeHeader(v); err == nil {
		return s
	}
	return v
}

// PatchMails returns the patches attached to incident id's posts, in
// order, as mail git am applies: a git format-patch attachment as it
// is, any other diff with the post's sender, date and subject. Each
// carries the post's signature status in X-Cvd-* fields (git am
// ignores them; the patch's own X-Cvd-* fields are dropped). Only posts
// that were distributed (a member's verified post) and the report count:
// held ones, which anyone can send, are skipped and counted.
func (d *Desk) PatchMails(ctx context.Context, id string) (msgs []publish.MboxMessage, skipped int, err error) {
	posts, err := d.Thread(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	for _, p := range posts {
		if p.Status != "distributed" && !p.Report {
			skipped += len(p.Patches)
			continue
		}
		for _, pt := range p.Patches {
			msgs = append(msgs, patchMail(id, p, pt))
		}
	}
	return msgs, skipped, nil
}

// dropCvdFields removes X-Cvd-* fields (ours to set) from a header.
func dropCvdFields(head []byte) []byte {
	var out [][]byte
	skip := false
	for _, l := range bytes.Split(head, []byte("\n")) {
		if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
			if !skip {
				out = append(out, l)
			}
			continue
		}
		skip = len(l) >= 6 && strings.EqualFold(string(l[:6]), "x-cvd-")
		if !skip {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

func patchMail(id string, p ThreadPost, pt Patch) publish.MboxMessage {
	body := bytes.ReplaceAll(pt.Body, []byte("\r\n"), []byte("\n"))
	sig := p.Signature
	if p.Signer != "" {
		sig += " by " + p.Signer
	}
	var meta bytes.Buffer
	fmt.Fprintf(&meta, "X-Cvd-Incident: %s\n", id)
	fmt.Fprintf(&meta, "X-Cvd-Posted: %s by %s (post %d, %s)\n", p.At.UTC().Format(time.RFC3339), p.Sender, p.N, p.Status)
	fmt.Fprintf(&meta, "X-Cvd-Signature: %s\n", sig)
	if pt.Name != "" && pt.Name != "." {
		fmt.Fprintf(&meta, "X-Cvd-Attachment: %s\n", strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return '_'
			}
			return r
		}, pt.Name))
	}
	if bytes.HasPrefix(body, []byte("From ")) {
		// git format-patch: drop its "From " line, add ours after the
		// header fields it has.
		_, rest, _ := bytes.Cut(body, []byte("\n"))
		if head, b, ok := bytes.Cut(rest, []byte("\n\n")); ok {
			var raw bytes.Buffer
			raw.Write(dropCvdFields(head))
			raw.WriteString("\n")
			raw.Write(meta.Bytes())
			raw.WriteString("\n")
			raw.Write(b)
			return publish.MboxMessage{From: p.Sender, Date: p.At, Raw: raw.Bytes()}
		}
	}
	subject := orDefault(strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(pt.Name, ".patch"), ".diff")), p.Subject)
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\n", p.Sender)
	fmt.Fprintf(&b, "Date: %s\n", p.At.UTC().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Subject: [PATCH] %s\n", mime.QEncoding.Encode("utf-8", subject))
	b.Write(meta.Bytes())
	b.WriteString("\n")
	fmt.Fprintf(&b, "Posted to %s by %s on %s.\n---\n", id, p.Sender, p.At.UTC().Format("2006-01-02 15:04 UTC"))
	b.Write(body)
	return publish.MboxMessage{From: p.Sender, Date: p.At, Raw: b.Bytes()}
}

// WriteThread writes posts as the CLI shows an incident's thread: each
// post's number, time, sender, status, signature and text.
func WriteThread(w io.Writer, posts []ThreadPost) error {
	for i, p := range posts {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "#%d  %s  %s  [%s]\n", p.N, p.At.UTC().Format("2006-01-02 15:04 UTC"), orDefault(p.Sender, "(no sender)"), p.Status)
		writePostMeta(w, p)
		if p.NoArchive != "" {
			fmt.Fprintf(w, "    (%s)\n", p.NoArchive)
			continue
		}
		if p.Text != "" {
			fmt.Fprintf(w, "\n%s\n", indent(p.Text, "    "))
		}
	}
	if len(posts) == 0 {
		_, err := fmt.Fprintln(w, "(no posts)")
		return err
	}
	return nil
}

// WriteReport writes the report that opened an incident: cvd's header
// block (who sent it, signature, authentication) and its text.
func WriteReport(w io.Writer, p ThreadPost) error {
	fmt.Fprintf(w, "Received:  %s\n", p.At.UTC().Format("2006-01-02 15:04 UTC"))
	if p.Subject != "" {
		fmt.Fprintf(w, "Subject:   %s\n", p.Subject)
	}
	if p.Block != "" {
		fmt.Fprintln(w, p.Block)
	}
	for _, pt := range p.Patches {
		fmt.Fprintf(w, "Patch:     %s (%d bytes)\n", orDefault(pt.Name, "(inline)"), len(pt.Body))
	}
	if p.NoArchive != "" {
		_, err := fmt.Fprintf(w, "\n(%s)\n", p.NoArchive)
		return err
	}
	_, err := fmt.Fprintf(w, "\n%s\n", p.Text)
	return err
}

func writePostMeta(w io.Writer, p ThreadPost) {
	sig := p.Signature
	if p.Signer != "" {
		sig += " by " + p.Signer
	}
	fmt.Fprintf(w, "    Signature: %s; came in %s\n", sig, map[bool]string{true: "encrypted", false: "unencrypted"}[p.Encrypted])
	if p.Subject != "" {
		fmt.Fprintf(w, "    Subject:   %s\n", p.Subject)
	}
	for _, pt := range p.Patches {
		fmt.Fprintf(w, "    Patch:     %s (%d bytes; cvd incident patches)\n", orDefault(pt.Name, "(inline)"), len(pt.Body))
	}
}

func indent(s, pre string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pre + l
		}
	}
	return strings.Join(lines, "\n")
}
