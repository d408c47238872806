package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/cvd-project/cvd/store"
)

// Endpoint is a configured receiver.
type Endpoint struct {
	Name string
	URL  string
	// Secret keys the HMAC; it is never logged nor stored in the queue.
	Secret []byte
	// Timeout bounds one attempt (DefaultTimeout when 0).
	Timeout time.Duration
}

// DefaultTimeout bounds one attempt: a receiver that hangs is given up
// on and retried later.
const DefaultTimeout = 10 * time.Second

// DefaultBackoff is the wait after the 1st, 2nd, ... failed attempt (the
// last one repeats), the same as for mail.
var DefaultBackoff = []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 4 * time.Hour}

// Queue is the durable queue the worker runs on (the store).
type Queue interface {
	RecoverWebhooks(ctx context.Context, now time.Time) (int, error)
	ClaimWebhooks(ctx context.Context, now time.Time, limit int) ([]store.WebhookEvent, error)
	RecordWebhook(ctx context.Context, id int64, state string, next time.Time, reply string, now time.Time) error
	NextWebhookDue(ctx context.Context) (time.Time, bool, error)
}

// Worker posts queued events to their endpoints.
type Worker struct {
	Queue     Queue
	Endpoints map[string]Endpoint
	// Backoff is the retry schedule (DefaultBackoff when nil); MaxAge is
	// how long an event is retried before it fails (5 days when 0).
	Backoff []time.Duration
	MaxAge  time.Duration
	// Parallel bounds the attempts under way (4 when 0), so a hanging
	// receiver holds one slot, not the others.
	Parallel int
	// Poll bounds the sleep between looks at the queue (2s when 0), so
	// events queued by another process go out.
	Poll time.Duration
	Now  func() time.Time
	Log  *slog.Logger
	// Client sends the requests; one that follows no redirect when nil.
	Client *http.Client

	once sync.Once
	wake chan struct{}
}

func (w *Worker) init() {
	w.once.Do(func() {
		w.wake = make(chan struct{}, 1)
		if len(w.Backoff) == 0 {
			w.Backoff = DefaultBackoff
		}
		if w.MaxAge <= 0 {
			w.MaxAge = 5 * 24 * time.Hour
		}
		if w.Parallel <= 0 {
			w.Parallel = 4
		}
		if w.Poll <= 0 {
			w.Poll = 2 * time.Second
		}
		if w.Now == nil {
			w.Now = time.Now
		}
		if w.Log == nil {
			w.Log = slog.Default()
		}
		if w.Client == nil {
			// The signed event goes to the configured URL only.
			w.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		}
	})
}

// Wake makes Run look at the queue now.
func (w *Worker) Wake() {
	w.init()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run posts due events until ctx ends, then waits for the attempts under
// way. Rows a crash left in sending are due again at start.
func (w *Worker) Run(ctx context.Context) error {
	w.init()
	if n, err := w.Queue.RecoverWebhooks(ctx, w.Now()); err != nil {
		return err
	} else if n > 0 {
		w.Log.Info("webhook events interrupted by a restart are due again", "events", n)
	}
	sem := make(chan struct{}, w.Parallel)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		if free := cap(sem) - len(sem); free > 0 {
			evs, err := w.Queue.ClaimWebhooks(ctx, w.Now(), free)
			if err != nil && ctx.Err() == nil {
				w.Log.Error("webhook queue", "err", err)
			}
			for _, e := range evs {
				sem <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					w.attempt(ctx, e)
					<-sem
					w.Wake()
				}()
			}
		}
		wait := w.Poll
		if next, ok, err := w.Queue.NextWebhookDue(ctx); err == nil && ok {
			wait = min(wait, max(next.Sub(w.Now()), 0)+10*time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
		case <-time.After(wait):
		}
	}
}

// attempt posts e once and records the outcome.
func (w *Worker) attempt(ctx context.Context, e store.WebhookEvent) {
	log := w.Log.With("endpoint", e.Endpoint, "event", e.EventID, "attempt", e.Attempts+1)
	state, reply := store.QueueFailed, ""
	ep, ok := w.Endpoints[e.Endpoint]
	if !ok {
		reply = "endpoint no longer configured"
	} else {
		var retry bool
		retry, reply = w.post(ctx, ep, e)
		if ctx.Err() != nil {
			// Shutting down: the row stays in sending and is due again at
			// the next start.
			log.Info("webhook attempt interrupted by shutdown")
			return
		}
		switch {
		case !retry && reply == "":
			state = store.QueueSent
		case retry:
			state = store.QueueDeferred
		}
	}
	now := w.Now()
	next := now
	if state == store.QueueDeferred {
		next = now.Add(w.backoff(e.Attempts + 1))
		if next.Sub(e.CreatedAt) > w.MaxAge {
			state, reply = store.QueueFailed, reply+"; given up after "+w.MaxAge.String()
		}
	}
	switch state {
	case store.QueueSent:
		log.Info("webhook event delivered")
		reply = "delivered"
	case store.QueueDeferred:
		log.Warn("webhook event deferred", "reply", reply, "next", next.Format(time.RFC3339))
	default:
		log.Error("webhook event failed", "reply", reply)
	}
	if err := w.Queue.RecordWebhook(context.WithoutCancel(ctx), e.ID, state, next, reply, now); err != nil {
		log.Error("record webhook outcome", "err", err)
	}
}

func (w *Worker) backoff(n int) time.Duration {
	return w.Backoff[min(n, len(w.Backoff))-1]
}

// post sends one signed request. It returns retry for a temporary failure
// and the reason of any failure ("" when delivered).
func (w *Worker) post(ctx context.Context, ep Endpoint, e store.WebhookEvent) (retry bool, reply string) {
	timeout := ep.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(e.Body))
	if err != nil {
		return false, "bad endpoint URL"
	}
	ts := w.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cvd-webhook")
	req.Header.Set(HeaderEvent, e.EventID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(ep.Secret, ts, e.Body))
	resp, err := w.Client.Do(req)
	if err != nil {
		return true, describe(err, timeout)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, ""
	}
	reply = "HTTP " + resp.Status
	if s := printable(string(b)); s != "" {
		reply += ": " + s
	}
	switch {
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests,
		resp.StatusCode == http.StatusTooEarly:
		return true, reply
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return false, reply + " (does the receiver have this endpoint's secret? then 'cvd webhook retry ID')"
	}
	return false, reply
}

// describe says why a request failed without the URL (its path or query
// may hold a token).
func describe(err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	return strings.Join(strings.Fields(s), " ")
}
