-- Outbound mail. A message body is stored once; each recipient has its own
-- row with its delivery state. Times are unix milliseconds.
CREATE TABLE queue_msg (
	id         INTEGER PRIMARY KEY,
	created_at INTEGER NOT NULL,
	kind       TEXT    NOT NULL DEFAULT '',  -- what the notice is, for the failure hook (e.g. "ack", "prenotify")
	ref        TEXT    NOT NULL DEFAULT '',  -- what it is about, e.g. an incident ID; opaque here
	size       INTEGER NOT NULL,
	raw        BLOB    NOT NULL              -- the complete message, CRLF line endings
);

CREATE TABLE queue (
	id              INTEGER PRIMARY KEY,
	msg_id          INTEGER NOT NULL REFERENCES queue_msg (id) ON DELETE CASCADE,
	rcpt            TEXT    NOT NULL,
	domain          TEXT    NOT NULL,          -- lowercased domain of rcpt
	token           TEXT    NOT NULL UNIQUE,   -- VERP token: security+bounce-TOKEN@DOMAIN
	state           TEXT    NOT NULL DEFAULT 'queued'
	                CHECK (state IN ('queued', 'sending', 'sent', 'deferred', 'failed')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	priority        INTEGER NOT NULL DEFAULT 0,  -- higher first: 1 for announcements
	next_attempt_at INTEGER NOT NULL,
	last_reply      TEXT    NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	UNIQUE (msg_id, rcpt)
);
-- The worker's claim: due rows in order.
CREATE INDEX queue_due ON queue (priority DESC, next_attempt_at, id) WHERE state IN ('queued', 'deferred');
CREATE INDEX queue_state ON queue (state, id);
