package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// DroppedPrefix starts the last reply of a queue row dropped because its
// recipient may no longer have it (removed, frozen, key changed); such a
// row is failed and never retried.
const DroppedPrefix = "dropped: "

// DroppedCopies is what DropMemberCopiesTx did.
type DroppedCopies struct {
	// Rows is the number of queued or deferred rows failed.
	Rows int
	// Posts are the posts whose copies were dropped (their post_copy
	// rows are gone, so a backlog sends them again).
	Posts []int64
	// Sending is the number of rows under way, which cannot be stopped.
	Sending int
}

// DropMemberCopiesTx fails, with reason, every queued or deferred row
// addressed to email about the list listName (its queue ref), and forgets
// the post copies they carried for member memberID.
func DropMemberCopiesTx(ctx context.Context, tx *sql.Tx, listName string, memberID int64, email, reason string, now time.Time) (*DroppedCopies, error) {
	email = strings.ToLower(email)
	rows, err := tx.QueryContext(ctx, `UPDATE queue SET state = 'failed', last_reply = ?, updated_at = ?
		WHERE state IN ('queued', 'deferred') AND rcpt = ? COLLATE NOCASE AND msg_id IN (SELECT id FROM queue_msg WHERE ref = ?)
		RETURNING msg_id`, truncate(DroppedPrefix+reason, maxReplyLen), now.UnixMilli(), email, listName)
	if err != nil {
		return nil, fmt.Errorf("drop copies for %s on %s: %w", email, listName, err)
	}
	var msgs []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("drop copies for %s on %s: %w", email, listName, err)
		}
		msgs = append(msgs, id)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("drop copies for %s on %s: %w", email, listName, err)
	}
	d := &DroppedCopies{Rows: len(msgs)}
	for _, id := range msgs {
		var post int64
		err := tx.QueryRowContext(ctx, `DELETE FROM post_copy WHERE member_id = ? AND queue_msg = ? RETURNING post_id`, memberID, id).Scan(&post)
		if err == sql.ErrNoRows {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("drop copies for %s on %s: %w", email, listName, err)
		}
		d.Posts = append(d.Posts, post)
	}
	err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM queue q JOIN queue_msg m ON m.id = q.msg_id
		WHERE q.state = 'sending' AND q.rcpt = ? COLLATE NOCASE AND m.ref = ?`, email, listName).Scan(&d.Sending)
	if err != nil {
		return nil, fmt.Errorf("drop copies for %s on %s: %w", email, listName, err)
	}
	return d, nil
}

// PostTx returns post id.
func PostTx(ctx context.Context, tx *sql.Tx, id int64) (*Post, error) {
	wr := &wholeReader{tx: tx}
	defer wr.close()
	p, err := scanPost(ctx, tx.QueryRowContext(ctx, `SELECT `+postColumns+` FROM post WHERE id = ?`, id), wr)
	if err == sql.ErrNoRows {
		return nil, fmt.Errorf("post %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("post %d: %w", id, err)
	}
	return p, nil
}
