package lists

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/cvd-project/cvd/store"
)

// Keyword is one command line "x-NAME: ARGS" at the top of a signed post
// (Schleuder style). Name is lowercased, without the "x-".
type Keyword struct {
	Name string
	Args string
}

// Command is a keyword from a verified post, with who sent it.
type Command struct {
	List *store.List
	// Sender is the member whose good signature covers the post.
	Sender store.Member
	// Signer is the fingerprint of that signature.
	Signer  string
	Keyword Keyword
	// Attached is the post's content without the keyword lines (for
	// commands that use it, e.g. a patch or a key).
	Attached []byte
	Now      time.Time
}

// KeywordHandler handles keywords the lists package does not know (the
// incident keywords of package embargo). It runs inside the transaction
// that records the post, so its changes and the messages it queues commit
// with it. known is false for a keyword it does not know either; reply is
// the line reported back to the sender (encrypted).
type KeywordHandler func(ctx context.Context, tx *sql.Tx, c *Command) (reply string, known bool, err error)

// ParseKeywords splits the keyword lines off the start of a text: lines
// "x-name: args" (or "x-name" alone), blank lines between them allowed.
// It returns the keywords and the text after them.
func ParseKeywords(text string) ([]Keyword, string) {
	var kws []Keyword
	rest := text
	for rest != "" {
		line, after, _ := strings.Cut(rest, "\n")
		t := strings.TrimSpace(line)
		if t == "" {
			if len(kws) == 0 {
				// Leading blank lines before the first keyword.
				rest = after
				continue
			}
			rest = after
			continue
		}
		if len(t) < 3 || !strings.EqualFold(t[:2], "x-") {
			break
		}
		name, args, _ := strings.Cut(t[2:], ":")
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" || strings.ContainsAny(name, " \t") {
			break
		}
		kws = append(kws, Keyword{Name: name, Args: strings.TrimSpace(args)})
		rest = after
	}
	if len(kws) == 0 {
		return nil, text
	}
	return kws, rest
}
