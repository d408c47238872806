package embargo_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/lists"
)

// TestPublicMessages: before release an incident has no public messages;
// after it, the signed announcement as archived and the copy to the
// external list, and never a subscriber's copy with its unsubscribe link.
func TestPublicMessages(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	sam := w.person("Sam Subscriber", "sam@users.example")
	if _, err := w.svc.AddMember(ctx, lists.AnnounceList, lists.NewMember{Email: sam.Email, Role: lists.RoleSubscriber, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	id := w.confirmed(embargo.Public)
	if _, err := w.desk.PublicMessages(ctx, id); err == nil || !embargo.IsRefusal(err) || !strings.Contains(err.Error(), "not published") {
		t.Errorf("before release: %v", err)
	}
	w.mustDo(id, func(p *embargo.Op) error { return p.Set("title", "Crash on empty input") })
	w.mustDo(id, func(p *embargo.Op) error { return p.Set("description", "An empty file crashes the parser.") })
	w.mustDo(id, func(p *embargo.Op) error { return p.Versions("libexample", "1.0", "", "") })
	w.mustDo(id, func(p *embargo.Op) error { return p.Set("workaround", "Reject empty files before parsing.") })
	w.clock.Advance(90 * time.Second)
	w.mustDo(id, func(p *embargo.Op) error { return p.Publish(false, "", false) })

	msgs, err := w.desk.PublicMessages(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("%d public messages, want the archived announcement and the oss-security copy", len(msgs))
	}
	for _, m := range msgs {
		if !bytes.Contains(m.Raw, []byte("multipart/signed")) || !bytes.Contains(m.Raw, []byte("Reject empty files")) ||
			bytes.Contains(m.Raw, []byte("List-Unsubscribe:")) || bytes.Contains(m.Raw, []byte(sam.Email)) || m.From != "security@example.org" {
			t.Errorf("public message from %s:\n%s", m.From, m.Raw)
		}
	}
	if !bytes.Contains(msgs[0].Raw, []byte("To: announce@example.org")) && !bytes.Contains(msgs[1].Raw, []byte("To: announce@example.org")) {
		t.Error("the announce list's archived announcement is missing")
	}
	if _, err := w.desk.PublicMessages(ctx, "2026-999"); err == nil {
		t.Error("unknown incident")
	}
}
