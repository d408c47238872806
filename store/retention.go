package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Purged counts what a purge emptied (or, for a dry run, would empty).
type Purged struct {
	SpoolMessages int
	SpoolBytes    int64
	QueueBodies   int
	QueueBytes    int64
}

// purgeBatch bounds the rows emptied per transaction, so that intake and
// delivery never wait long for the writer.
const purgeBatch = 500

// openIncident matches an incident not closed: nothing of it is purged.
const openIncident = `i.state != 'closed'`

// purgeableSpool selects routed spool rows received before ?1 that nothing
// still needs raw: not held in triage, not the report or a post of an
// incident that is not closed, not addressed to one.
const purgeableSpool = `SELECT s.id, length(s.raw) + COALESCE((SELECT SUM(length(c.data)) FROM spool_chunk c WHERE c.spool_id = s.id), 0) FROM spool s
	WHERE s.purged_at = 0 AND s.state = 'done' AND s.received_at < ?1 AND s.id > ?2
	AND NOT EXISTS (SELECT 1 FROM triage t WHERE t.spool_id = s.id)
	AND NOT EXISTS (SELECT 1 FROM incident i WHERE i.spool_id = s.id AND ` + openIncident + `)
	AND NOT EXISTS (SELECT 1 FROM post p JOIN list l ON l.id = p.list_id JOIN incident i ON i.id = l.name
		WHERE p.spool_id = s.id AND ` + openIncident + `)
	AND NOT EXISTS (SELECT 1 FROM spool_rcpt r JOIN incident i ON r.rcpt LIKE '%+' || i.id || '@%'
		WHERE r.spool_id = s.id AND ` + openIncident + `)
	ORDER BY s.id LIMIT ?3`

// purgeableQueue selects message bodies (with their share of a shared
// body, which goes with the last message naming it) whose every recipient row was
// delivered before ?1 and that no one reads again: not in anyone's IMAP
// INBOX, not a copy in an incident member's mailbox, not an
// announcement to an external list (the public mbox archive serves
// those), nothing of an incident that is not closed.
const purgeableQueue = `SELECT m.id, length(m.raw) + COALESCE((SELECT SUM(length(c.data)) FROM queue_chunk c WHERE c.msg_id = m.id), 0)
		+ COALESCE((SELECT b.size / (SELECT COUNT(*) FROM queue_msg o WHERE o.body_id = b.id) FROM shared_body b WHERE b.id = m.body_id), 0) FROM queue_msg m
	WHERE m.purged_at = 0 AND m.id > ?2
	AND EXISTS (SELECT 1 FROM queue q WHERE q.msg_id = m.id)
	AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.msg_id = m.id AND (q.state != 'sent' OR q.updated_at >= ?1 OR q.imap_uid IS NOT NULL))
	AND NOT EXISTS (SELECT 1 FROM post_copy c JOIN post p ON p.id = c.post_id JOIN list l ON l.id = p.list_id
		WHERE c.queue_msg = m.id AND l.kind != 'announce')
	AND NOT (m.kind = 'announce' AND EXISTS (SELECT 1 FROM incident i WHERE i.id = m.ref))
	AND NOT EXISTS (SELECT 1 FROM incident i WHERE i.id = m.ref AND ` + openIncident + `)
	ORDER BY m.id LIMIT ?3`

// Purge empties the raw message of routed spool rows received before
// spoolBefore and the body of delivered queue messages whose last
// delivery was before deliveredBefore, keeping everything an incident
// that is not closed, an archive or an IMAP mailbox needs. A zero time
// purges nothing of its kind. With dryRun it only counts.
func (db *DB) Purge(ctx context.Context, spoolBefore, deliveredBefore, now time.Time, dryRun bool) (Purged, error) {
	var p Purged
	if !spoolBefore.IsZero() {
		n, b, err := db.purge(ctx, purgeableSpool, `UPDATE spool SET raw = X'', purged_at = ? WHERE id IN `, spoolBefore, now, dryRun)
		if err != nil {
			return p, fmt.Errorf("purge the spool: %w", err)
		}
		p.SpoolMessages, p.SpoolBytes = n, b
	}
	if !deliveredBefore.IsZero() {
		n, b, err := db.purge(ctx, purgeableQueue, `UPDATE queue_msg SET raw = X'', body_id = NULL, purged_at = ? WHERE id IN `, deliveredBefore, now, dryRun)
		if err != nil {
			return p, fmt.Errorf("purge delivered mail: %w", err)
		}
		p.QueueBodies, p.QueueBytes = n, b
	}
	return p, nil
}

func (db *DB) purge(ctx context.Context, sel, upd string, before, now time.Time, dryRun bool) (int, int64, error) {
	var n int
	var bytes int64
	after := int64(0)
	for {
		var ids []any
		var got int64
		// Rows are selected and emptied in one transaction, so that a row
		// claimed or referred to meanwhile is never purged.
		batch := func(tx *sql.Tx) error {
			ids, got = ids[:0], 0
			rows, err := tx.QueryContext(ctx, sel, before.UnixMilli(), after, purgeBatch)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id, size int64
				if err := rows.Scan(&id, &size); err != nil {
					return err
				}
				ids = append(ids, id)
				got += size
				after = id
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if dryRun || len(ids) == 0 {
				return nil
			}
			_, err = tx.ExecContext(ctx, upd+`(?`+strings.Repeat(", ?", len(ids)-1)+`)`, append([]any{now.UnixMilli()}, ids...)...)
			return err
		}
		var err error
		if dryRun {
			err = db.Read(ctx, batch)
		} else {
			err = db.Write(ctx, batch)
		}
		if err != nil {
			return n, bytes, err
		}
		n += len(ids)
		bytes += got
		if len(ids) < purgeBatch {
			return n, bytes, nil
		}
	}
}

// Space is how much room the database takes.
type Space struct {
	// File is the size of the database file; InUse the part of it not in
	// free pages (which are reused before the file grows).
	File, InUse int64
}

// SpaceUsed returns the database's size after a checkpoint of its log.
func (db *DB) SpaceUsed(ctx context.Context) (Space, error) {
	var s Space
	var pages, free, size int64
	if _, err := db.write.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return s, fmt.Errorf("checkpoint %s: %w", db.path, err)
	}
	err := db.Read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&free); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&size)
	})
	if err != nil {
		return s, fmt.Errorf("size of %s: %w", db.path, err)
	}
	return Space{File: pages * size, InUse: (pages - free) * size}, nil
}

// Vacuum rebuilds the database file without the room purged rows left in
// their pages (SQLite reuses only whole free pages, and purged rows leave
// pages partly empty). Writers wait while it runs; it needs free disk for
// a second copy of the database.
func (db *DB) Vacuum(ctx context.Context) error {
	if _, err := db.write.ExecContext(ctx, `VACUUM`); err != nil {
		return fmt.Errorf("vacuum %s: %w", db.path, err)
	}
	if _, err := db.write.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("checkpoint %s: %w", db.path, err)
	}
	return nil
}
