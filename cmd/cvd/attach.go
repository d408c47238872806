package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/embargo"
)

// fileList is a repeatable file flag.
type fileList []string

func (f *fileList) String() string { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error {
	*f = append(*f, v)
	return nil
}

// readAttachments reads the files of --attach, and the further arguments
// after it ("--attach a.patch b.patch").
func readAttachments(flagged fileList, more []string) ([]embargo.File, error) {
	if len(flagged) == 0 && len(more) > 0 {
		return nil, fmt.Errorf("incident notify: unexpected %q (files go after --attach): %w", strings.Join(more, " "), errUsage)
	}
	var out []embargo.File
	for _, name := range append(append([]string{}, flagged...), more...) {
		fi, err := os.Stat(name)
		if err != nil {
			return nil, fmt.Errorf("incident notify: attach: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("incident notify: attach %s: not a regular file", name)
		}
		if fi.Size() > embargo.MaxFileSize {
			return nil, fmt.Errorf("incident notify: attach %s: %d bytes; at most %d MiB per file", name, fi.Size(), embargo.MaxFileSize>>20)
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("incident notify: attach: %w", err)
		}
		out = append(out, embargo.File{Name: filepath.Base(name), Data: b})
	}
	return out, nil
}

// listKind is the desk's view of a roster entry's kind (nil: a team).
func listKind(k config.RosterKind) *embargo.ListKind {
	if !k.IsList() {
		return nil
	}
	return &embargo.ListKind{MaxEmbargo: k.MaxEmbargo, AcceptReplies: k.Replies == config.RepliesAccept, Members: k.Members}
}

// warnPublicLists warns when downstreams are told under embargo but no
// public list (oss-security) will hear of the issue at its end.
func warnPublicLists(c *config.Config, log *slog.Logger) {
	if len(c.Embargo.External) == 0 && len(c.Embargo.Roster) > 0 {
		log.Warn("embargo.external is empty while embargo.roster is not: distributions are told under embargo, but no public list (e.g. oss-security@lists.openwall.com) gets the advisory when it ends",
			"config", c.File)
	}
}
