package embargo

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/cvd-project/cvd/publish"
	"github.com/cvd-project/cvd/store"
)

// ReleaseEvent is the JSON event posted to each configured webhook when
// an incident is released. It holds public facts only.
type ReleaseEvent struct {
	Type     string `json:"type"` // "advisory.released"
	ID       string `json:"id"`   // the same on every attempt
	Project  string `json:"project"`
	Incident string `json:"incident"`
	Title    string `json:"title"`
	CVE      string `json:"cve,omitempty"`
	// Severity is e.g. "7.5 High" from the first CVSS vector.
	Severity  string   `json:"severity,omitempty"`
	CVSS      []string `json:"cvss,omitempty"`
	URL       string   `json:"url,omitempty"`
	Published string   `json:"published"` // RFC 3339, UTC
	// EmbargoBroken is set when the release came before the public date,
	// with the public reason.
	EmbargoBroken bool   `json:"embargo_broken,omitempty"`
	Reason        string `json:"reason,omitempty"`
	// Subject and Text are the signed announcement's subject and body.
	Subject string `json:"subject"`
	Text    string `json:"text"`
}

// queueWebhooks queues the release event for every configured webhook in
// the release's transaction: it is posted once per endpoint, after the
// release committed, by the webhook worker.
func (o *op) queueWebhooks(a *publish.Advisory, subject, text string, broken bool) error {
	if len(o.d.Webhooks) == 0 {
		return nil
	}
	ev := ReleaseEvent{Type: "advisory.released", ID: fmt.Sprintf("%s:%s:released", o.d.Domain, o.in.ID), Project: o.d.Project.Name,
		Incident: o.in.ID, Title: a.Title, CVE: a.CVE, CVSS: a.CVSS, URL: a.PageURL(), Published: o.now.UTC().Format(time.RFC3339),
		EmbargoBroken: broken, Subject: subject, Text: text}
	if broken {
		ev.Reason = o.in.Facts.Public().BreakReason
	}
	for _, v := range a.CVSS {
		if c, err := publish.ParseCVSS(v); err == nil {
			ev.Severity = c.ScoreString() + " " + string(c.Severity)
			break
		}
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("release event of %s: %w", o.in.ID, err)
	}
	n, err := store.EnqueueWebhookTx(o.ctx, o.tx, o.d.Webhooks, ev.ID, ev.Type, o.in.ID, body, o.now)
	if err != nil {
		return err
	}
	if n > 0 {
		o.note("release event queued for %d webhooks", n)
	}
	return nil
}
