package embargo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/publish"
	"github.com/cvd-project/cvd/store"
)

// What is public. An incident's public outputs (the announcement on the
// announce list and to the external lists, the advisory pages, feed and
// records of the site, the text, CVE, OSV and CSAF exports, the mbox of
// public messages) are built from one value: the advisory of
// Desk.advisory, which reads nothing but Facts.Public. The Facts fields
// tagged vis:"internal" (backport decisions, notes, triage reasons) and
// everything the incident keeps outside Facts (the reporter's address and
// name, which appear only as a credit the team records; the downstreams
// and members; the timeline; the posts on the incident list) never reach
// them.

// Public returns the facts that may leave: f with every field tagged
// vis:"internal" cleared. A field without a vis tag panics, so that a new
// fact cannot be added without deciding.
func (f Facts) Public() Facts {
	v := reflect.ValueOf(&f).Elem()
	t := v.Type()
	for i := range t.NumField() {
		switch vis := t.Field(i).Tag.Get("vis"); vis {
		case "public":
		case "internal":
			v.Field(i).SetZero()
		default:
			panic(fmt.Sprintf("embargo: Facts.%s has vis %q: tag it public or internal", t.Field(i).Name, vis))
		}
	}
	return f
}

// incomplete refuses a release whose public advisory is not complete,
// listing what is missing (or what else is wrong with it).
func incomplete(id string, a *publish.Advisory, verr error, forced bool) error {
	m := a.Missing()
	if len(m) == 0 {
		return refuse("the public advisory of %s cannot be published: %v", id, verr)
	}
	how := fmt.Sprintf("Record them (cvd incident set %s title|description TEXT, cvd incident versions %s PACKAGE --fixed VERSION)", id, id)
	if slices.Contains(m, "affected versions") {
		return refuse("the public advisory of %s is incomplete, missing: %s. %s; the affected versions cannot be forced", id, strings.Join(m, ", "), how)
	}
	if forced {
		return refuse("the public advisory of %s cannot be published: %v", id, verr)
	}
	return refuse("the public advisory of %s is incomplete, missing: %s. %s, or publish with --force "+
		"(the missing text becomes a placeholder; only public facts are published)", id, strings.Join(m, ", "), how)
}

// PublicMessages returns the incident's public messages, oldest first:
// the signed announcement as archived on the announce list (without any
// subscriber's unsubscribe link) and the signed copies sent to the
// external lists. An incident not yet released has none, and a refusal
// says so.
func (d *Desk) PublicMessages(ctx context.Context, id string) ([]publish.MboxMessage, error) {
	var out []publish.MboxMessage
	err := d.DB.Read(ctx, func(tx *sql.Tx) error {
		in, err := d.load(ctx, tx, id)
		if err != nil {
			return err
		}
		if in.PublishedAt.IsZero() {
			return refuse("incident %s is not published: it has no public messages yet", in.ID)
		}
		from := d.IntakeAddress()
		l, err := store.ListByNameTx(ctx, tx, lists.AnnounceList)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		default:
			posts, err := store.PostsTx(ctx, tx, l.ID)
			if err != nil {
				return err
			}
			// The release posts the announcement in its own transaction,
			// at the publication time.
			for _, p := range posts {
				if p.ReceivedAt.Equal(in.PublishedAt) && p.Sender == from && len(p.Archive) > 0 {
					out = append(out, publish.MboxMessage{From: from, Date: p.ReceivedAt, Raw: p.Archive})
				}
			}
		}
		qs, err := store.QueuedMessagesTx(ctx, tx, "announce", in.ID)
		if err != nil {
			return err
		}
		for _, q := range qs {
			out = append(out, publish.MboxMessage{From: from, Date: q.CreatedAt, Raw: q.Raw})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Date.Before(out[j].Date) })
	return out, nil
}
