-- Outbound webhook events: one row per configured endpoint and event,
-- posted by the webhook worker with retries like mail. The endpoint is
-- the name of an [[announce.webhook]] in the configuration: its URL and
-- secret are read from there at each attempt, never stored here.
-- Times are unix milliseconds.
CREATE TABLE webhook (
	id              INTEGER PRIMARY KEY,
	endpoint        TEXT    NOT NULL,
	event_id        TEXT    NOT NULL,          -- the same on every attempt: receivers drop repeats
	kind            TEXT    NOT NULL,          -- e.g. "advisory.released"
	ref             TEXT    NOT NULL DEFAULT '',  -- e.g. the incident ID
	body            BLOB    NOT NULL,          -- the JSON event, signed at each attempt
	state           TEXT    NOT NULL DEFAULT 'queued'
	                CHECK (state IN ('queued', 'sending', 'sent', 'deferred', 'failed')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL,
	last_reply      TEXT    NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	UNIQUE (endpoint, event_id)
);
CREATE INDEX webhook_due ON webhook (next_attempt_at, id) WHERE state IN ('queued', 'deferred');
