package embargo

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cvd-project/cvd/store"
)

// Report writes the post-mortem of incident id: the figures (time to
// acknowledge, confirm, fix and publish, notice given to downstreams,
// embargo length, downstream acknowledgements) and the timeline.
func (d *Desk) Report(ctx context.Context, id string, w io.Writer) error {
	in, err := d.Get(ctx, id)
	if err != nil {
		return err
	}
	evs, ds, err := d.Timeline(ctx, in.ID)
	if err != nil {
		return err
	}
	first := func(kind, contains string) time.Time {
		for _, e := range evs {
			if e.Kind == kind && strings.Contains(e.Detail, contains) {
				return e.At
			}
		}
		return time.Time{}
	}
	since := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return dur(t.Sub(in.CreatedAt))
	}
	fmt.Fprintf(w, "Post-mortem of incident %s (%s, %s)\n\n", in.ID, in.State, in.Privacy)
	fmt.Fprintf(w, "%-34s %s\n", "Reported", utc(in.CreatedAt))
	fmt.Fprintf(w, "%-34s %s\n", "Acknowledged (automatic)", since(first("ack", "acknowledgement sent")))
	fmt.Fprintf(w, "%-34s %s\n", "Taken by the team", since(in.AckedAt))
	if !in.EscalatedAt.IsZero() {
		fmt.Fprintf(w, "%-34s %s\n", "Escalated (nobody took it)", since(in.EscalatedAt))
	}
	fmt.Fprintf(w, "%-34s %s\n", "Confirmed", since(first("state", "-> confirmed")))
	fmt.Fprintf(w, "%-34s %s\n", "Fix recorded", since(fixRecorded(evs)))
	fmt.Fprintf(w, "%-34s %s\n", "First downstream notice", since(in.FirstNoticeAt))
	fmt.Fprintf(w, "%-34s %s\n", "Published", since(in.PublishedAt))
	if !in.FirstNoticeAt.IsZero() && !in.EmbargoAt.IsZero() {
		fmt.Fprintf(w, "%-34s %s (rule: at least %s)\n", "Notice given to downstreams", dur(in.EmbargoAt.Sub(in.FirstNoticeAt)), human(d.Policy.MinNotice))
	}
	if !in.FirstNoticeAt.IsZero() && !in.PublishedAt.IsZero() {
		fmt.Fprintf(w, "%-34s %s (rule: at most %s)\n", "Embargo length", dur(in.PublishedAt.Sub(in.FirstNoticeAt)), human(d.Policy.MaxEmbargo))
	}
	if in.EmbargoOverride != "" {
		fmt.Fprintf(w, "%-34s %s\n", "Maximum exceeded because", in.EmbargoOverride)
	}
	if in.Facts.BreakReason != "" {
		fmt.Fprintf(w, "%-34s %s\n", "Embargo broken early", in.Facts.BreakReason)
	}
	if in.Privacy == ZeroDay {
		fmt.Fprintf(w, "%-34s %s\n", "Zero-day", "not responsibly disclosed: review how it became public")
	}
	if f := in.Facts.Dependency; f != nil {
		fmt.Fprintf(w, "%-34s %s (%s)\n", "Dependency advisory", f.Advisory, strings.ReplaceAll(orDefault(f.Decision, "undecided"), "_", " "))
	}
	acked := 0
	for _, x := range ds {
		if !x.AckedAt.IsZero() {
			acked++
		}
	}
	fmt.Fprintf(w, "%-34s %d of %d\n", "Downstream acknowledgements", acked, len(ds))
	for _, x := range ds {
		status := "silent"
		if !x.AckedAt.IsZero() {
			status = fmt.Sprintf("acknowledged after %s (%s)", dur(x.AckedAt.Sub(x.NotifiedAt)), x.AckHow)
		}
		if !x.RemindedAt.IsZero() {
			status += ", reminded"
		}
		fmt.Fprintf(w, "  %-32s %s\n", orDefault(x.Name, x.Email), status)
	}
	d.writeTold(w, in, ds)
	d.WriteDecisions(w, in)
	fmt.Fprintf(w, "\nTimeline (UTC)\n")
	WriteTimeline(w, evs)
	return nil
}

// WriteTimeline writes events one a line: when, who, signature, what.
func WriteTimeline(w io.Writer, evs []store.IncidentEvent) {
	for _, e := range evs {
		sig := ""
		if e.Signer != "" {
			sig = " [sig " + e.Signer + "]"
		}
		fmt.Fprintf(w, "  %s  %-11s %s%s: %s\n", e.At.UTC().Format("2006-01-02 15:04"), e.Kind, e.Actor, sig, e.Detail)
	}
}

func fixRecorded(evs []store.IncidentEvent) time.Time {
	for _, e := range evs {
		if e.Kind == "versions" && strings.Contains(e.Detail, " fixed ") && !strings.Contains(e.Detail, "(none yet)") {
			return e.At
		}
	}
	return time.Time{}
}

// dur writes a duration as days, hours and minutes.
func dur(d time.Duration) string {
	if d < 0 {
		return "-" + dur(-d)
	}
	d = d.Round(time.Minute)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h := d / time.Hour
	m := (d - h*time.Hour) / time.Minute
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh %dm", days, h, m)
	case h > 0:
		return fmt.Sprintf("%dh %dm", h, m)
	}
	return fmt.Sprintf("%dm", m)
}
