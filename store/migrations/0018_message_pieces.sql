-- A received message larger than one piece (1 MiB) is stored in pieces of
-- at most 1 MiB, in order, committed with its spool row: the database
-- never handles it whole. Its spool.raw is then empty; spool.size is the
-- whole size. Emptying a row by retention (purged_at) drops its pieces.
CREATE TABLE spool_chunk (
	spool_id INTEGER NOT NULL REFERENCES spool (id) ON DELETE CASCADE,
	seq      INTEGER NOT NULL,
	data     BLOB    NOT NULL,
	PRIMARY KEY (spool_id, seq)
);

CREATE TRIGGER spool_chunk_purge AFTER UPDATE OF purged_at ON spool
WHEN NEW.purged_at != 0
BEGIN
	DELETE FROM spool_chunk WHERE spool_id = NEW.id;
END;

-- The same for a queued message larger than 1 MiB (queue_msg.raw empty).
CREATE TABLE queue_chunk (
	msg_id INTEGER NOT NULL REFERENCES queue_msg (id) ON DELETE CASCADE,
	seq    INTEGER NOT NULL,
	data   BLOB    NOT NULL,
	PRIMARY KEY (msg_id, seq)
);

CREATE TRIGGER queue_chunk_purge AFTER UPDATE OF purged_at ON queue_msg
WHEN NEW.purged_at != 0
BEGIN
	DELETE FROM queue_chunk WHERE msg_id = NEW.id;
END;

-- The same for a post's archive copy larger than 1 MiB (post.archive
-- empty, archive_size its size).
ALTER TABLE post ADD COLUMN archive_size INTEGER NOT NULL DEFAULT 0;

CREATE TABLE post_chunk (
	post_id INTEGER NOT NULL REFERENCES post (id) ON DELETE CASCADE,
	seq     INTEGER NOT NULL,
	data    BLOB    NOT NULL,
	PRIMARY KEY (post_id, seq)
);
