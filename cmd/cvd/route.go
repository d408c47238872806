package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/mailserver"
	"github.com/cvd-project/cvd/metrics"
	"github.com/cvd-project/cvd/ops"
	"github.com/cvd-project/cvd/store"
)

// loadProjectKey reads the project's private key and refuses one that
// cannot sign or encrypt, so the problem shows at start and not at the
// first notice.
func loadProjectKey(c *config.Config) (*crypto.Key, error) {
	k, err := ops.LoadProjectKey(c)
	if err != nil {
		return nil, err
	}
	if err := crypto.CheckUsable(k, time.Now()); err != nil {
		return nil, fmt.Errorf("%s: pgp.key_file %s: %w", c.File, c.PGP.KeyFile, err)
	}
	return k, nil
}

// listService builds the lists service on db with the project key.
func listService(c *config.Config, db *store.DB, key *crypto.Key, log *slog.Logger) *lists.Service {
	return &lists.Service{DB: db, Domain: c.Domain, Key: key, Log: log.With("part", "lists"),
		Limits: crypto.Limits{MaxMessageBytes: c.SMTP.MaxMessageBytes, MaxParts: c.SMTP.MaxMIMEParts,
			MaxDepth: c.SMTP.MaxMIMEDepth, MaxPlaintextBytes: c.SMTP.MaxDecryptedBytes},
		WebBase: c.Web.BaseURL, Project: c.Embargo.Project, Authority: configAuthority(c), MaxSignatureAge: c.Lists.MaxSignatureAge,
		// Receipts and refusal notices, like acknowledgements, go only to
		// senders that authenticated (README: Intake policy).
		MayReply: func(sm *store.SpooledMessage, addr string) bool {
			return c.Intake.AcknowledgeUnauthenticated || sm.Auth.AuthenticatedFor(addr)
		}}
}

// configAuthority names where the key of a configured team or roster
// address is set; mail never changes those keys.
func configAuthority(c *config.Config) func(string) string {
	where := map[string]string{}
	for _, ct := range c.Embargo.Roster {
		where[strings.ToLower(ct.Email)] = "cvd.toml (embargo.roster)"
	}
	for _, ct := range c.Embargo.Team {
		where[strings.ToLower(ct.Email)] = "cvd.toml (embargo.team)"
	}
	return func(email string) string { return where[strings.ToLower(strings.TrimSpace(email))] }
}

// startRouter routes spooled mail in the background. wake makes it look
// at the spool at once; stop waits for it to finish.
func startRouter(ctx context.Context, r *embargo.Router) (wake, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.Run(ctx)
	}()
	return r.Wake, func() {
		cancel()
		wg.Wait()
	}
}

// bounceHandler ties mail to security+bounce-TOKEN@DOMAIN to its queue row;
// a permanent failure of a list copy counts against the member.
func bounceHandler(db *store.DB, svc *lists.Service, domain string, log *slog.Logger) func(context.Context, *store.SpooledMessage, string, string) error {
	return func(ctx context.Context, sm *store.SpooledMessage, rcpt, token string) error {
		state, reason := store.SpoolDone, "bounce"
		b, err := mailserver.ParseBounce(sm.Raw)
		switch {
		case errors.Is(err, mailserver.ErrNotBounce):
			state, reason = store.SpoolFailed, "mail to a return path that is not a bounce"
			metrics.Bounces.WithLabelValues("not_a_bounce").Inc()
		case err != nil:
			state, reason = store.SpoolFailed, "unreadable bounce"
			metrics.Bounces.WithLabelValues("unreadable").Inc()
		default:
			tok, _ := mailserver.BounceToken(rcpt, sm.Raw, domain)
			if tok == "" {
				tok = token
			}
			for _, r := range b.Recipients {
				e, failed, err := db.RecordBounce(ctx, tok, r.Addr(), r.Status, r.Diagnostic, r.Permanent(), now())
				if errors.Is(err, store.ErrNotFound) {
					reason = "bounce for an unknown token"
					metrics.Bounces.WithLabelValues("unknown_token").Inc()
					continue
				}
				if err != nil {
					return err
				}
				log.Info("bounce", "spool", sm.ID, "queue_id", e.ID, "status", r.Status, "failed", failed)
				result := "transient"
				if r.Permanent() {
					result = "permanent"
				}
				metrics.Bounces.WithLabelValues(result).Inc()
				if failed {
					if err := svc.DeliveryFailed(ctx, e.Kind, e.Ref, e.Rcpt, r.Status+" "+r.Diagnostic); err != nil {
						return err
					}
				}
			}
		}
		return db.Write(ctx, func(tx *sql.Tx) error { return store.MarkRcptTx(ctx, tx, sm.ID, rcpt, state, reason) })
	}
}
