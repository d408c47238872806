package embargo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/store"
)

// Router takes received mail from the spool and hands each recipient to
// the part of cvd that owns its address: incident lists, bounces, intake.
type Router struct {
	DB     *store.DB
	Domain string
	Lists  *lists.Service
	// Bounce handles mail to security+bounce-TOKEN@DOMAIN; nil leaves such
	// mail in the spool.
	Bounce func(ctx context.Context, sm *store.SpooledMessage, rcpt, token string) error
	// RoleMail handles mail to postmaster@DOMAIN and abuse@DOMAIN; nil
	// refuses it as not local.
	RoleMail func(ctx context.Context, sm *store.SpooledMessage, rcpt string) error
	// Intake handles mail to security@DOMAIN; nil leaves it in the spool.
	Intake func(ctx context.Context, sm *store.SpooledMessage, rcpt string) error
	Log    *slog.Logger
	// Poll is how often the spool is read without a wake-up (default 30s).
	Poll time.Duration
	// Routed, when set, is called after a batch was routed (e.g. to wake
	// the delivery worker for the mail it queued).
	Routed func()
	// Posted, when set, is called after a message was handled on list
	// (the Desk's RecordReplyAcks); an error is logged.
	Posted func(ctx context.Context, list string) error
	// AfterBatch, when set, is called after each batch of messages was
	// routed (the Desk's FlushTriage); an error routes the batch again.
	AfterBatch func(ctx context.Context) error

	wakeOnce sync.Once
	wake     chan struct{}
}

// Wake makes Run look at the spool now.
func (r *Router) Wake() {
	select {
	case r.wakeChan() <- struct{}{}:
	default:
	}
}

func (r *Router) wakeChan() chan struct{} {
	r.wakeOnce.Do(func() { r.wake = make(chan struct{}, 1) })
	return r.wake
}

// Run routes spooled mail until ctx ends. Mail that no handler takes yet
// stays in the spool and is looked at again after a restart.
func (r *Router) Run(ctx context.Context) {
	wake := r.wakeChan()
	poll := r.Poll
	if poll <= 0 {
		poll = 30 * time.Second
	}
	var cursor int64
	for {
		n, last, err := r.RouteOnce(ctx, cursor)
		if err != nil && ctx.Err() == nil {
			r.Log.Error("route spool", "err", err)
		}
		cursor = max(cursor, last)
		if n > 0 && r.Routed != nil {
			r.Routed()
		}
		if n > 0 && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-time.After(poll):
		}
	}
}

// RouteOnce routes a batch of pending recipients of messages after the
// spool ID cursor. It returns how many it looked at and the last spool ID.
func (r *Router) RouteOnce(ctx context.Context, cursor int64) (int, int64, error) {
	pending, err := r.DB.PendingSpool(ctx, cursor, 100)
	if err != nil {
		return 0, cursor, err
	}
	first := cursor
	var sm *store.SpooledMessage
	for _, p := range pending {
		if sm == nil || sm.ID != p.SpoolID {
			if sm, err = r.DB.SpooledMessage(ctx, p.SpoolID); err != nil {
				return 0, cursor, err
			}
		}
		if err := r.route(ctx, sm, p.Rcpt); err != nil {
			// One bad message must not stop the others: record and go on.
			r.Log.Error("route message", "spool", sm.ID, "rcpt", p.Rcpt, "err", err)
			if merr := r.fail(ctx, sm.ID, p.Rcpt, "internal error"); merr != nil {
				return 0, cursor, errors.Join(err, merr)
			}
		}
		cursor = p.SpoolID
	}
	if r.AfterBatch != nil && len(pending) > 0 {
		if err := r.AfterBatch(ctx); err != nil {
			return 0, first, err
		}
	}
	return len(pending), cursor, nil
}

func (r *Router) fail(ctx context.Context, id int64, rcpt, reason string) error {
	return r.DB.Write(ctx, func(tx *sql.Tx) error { return store.MarkRcptTx(ctx, tx, id, rcpt, store.SpoolFailed, reason) })
}

func (r *Router) route(ctx context.Context, sm *store.SpooledMessage, rcpt string) error {
	a := lists.ParseAddress(rcpt, r.Domain)
	if a.Kind == lists.Announce {
		return r.Lists.HandleAnnounce(ctx, a.Tag, sm, rcpt)
	}
	if a.Kind == lists.Unknown && r.RoleMail != nil && isRoleAddress(rcpt) {
		return r.RoleMail(ctx, sm, rcpt)
	}
	if a.Kind != lists.Security {
		return r.fail(ctx, sm.ID, rcpt, "not a local address")
	}
	switch {
	case a.Tag == "":
		if r.Intake == nil {
			return nil
		}
		return r.Intake(ctx, sm, rcpt)
	case strings.HasPrefix(a.Tag, "bounce-"):
		if r.Bounce == nil {
			return nil
		}
		return r.Bounce(ctx, sm, rcpt, strings.TrimPrefix(a.Tag, "bounce-"))
	}
	_, err := r.Lists.HandlePost(ctx, a.Tag, sm, rcpt)
	if errors.Is(err, store.ErrNotFound) {
		r.Log.Info("mail for a list that does not exist", "spool", sm.ID, "rcpt", rcpt)
		return r.fail(ctx, sm.ID, rcpt, "no such list")
	}
	if err != nil {
		return fmt.Errorf("route to %s: %w", rcpt, err)
	}
	if r.Posted != nil {
		if err := r.Posted(ctx, a.Tag); err != nil {
			r.Log.Error("after list post", "spool", sm.ID, "list", a.Tag, "err", err)
		}
	}
	return nil
}

// isRoleAddress reports whether rcpt (in cvd's domain) is postmaster@ or
// abuse@ (RFC 5321 4.5.1, RFC 2142).
func isRoleAddress(rcpt string) bool {
	local, _, _ := strings.Cut(strings.ToLower(rcpt), "@")
	return local == "postmaster" || local == "abuse"
}
