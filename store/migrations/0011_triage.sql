-- The intake's triage queue: reports held back by the intake policy (rate
-- limits, spam score) instead of opening an incident. The message itself
-- stays in the spool; a row leaves the queue when accepted or dropped.
CREATE TABLE triage (
	id          INTEGER PRIMARY KEY,
	spool_id    INTEGER NOT NULL UNIQUE REFERENCES spool (id),
	rcpt        TEXT    NOT NULL,
	received_at INTEGER NOT NULL,             -- unix milliseconds
	sender      TEXT    NOT NULL DEFAULT '',  -- lowercased From address
	source      TEXT    NOT NULL DEFAULT '',  -- the client's address
	subject     TEXT    NOT NULL DEFAULT '',
	size        INTEGER NOT NULL,
	reason      TEXT    NOT NULL,
	score       REAL,                         -- spam score, when one was taken
	digested    INTEGER NOT NULL DEFAULT 0    -- 1 once listed in a digest to the team
);

-- Reports that opened an incident, for the intake's rate limits; rows
-- older than the limits' window are deleted as new ones come.
CREATE TABLE intake_rate (
	spool_id INTEGER NOT NULL UNIQUE,         -- the report
	at      INTEGER NOT NULL,                 -- unix milliseconds
	sender  TEXT    NOT NULL,
	network TEXT    NOT NULL
);
CREATE INDEX intake_rate_sender ON intake_rate (sender, at);
CREATE INDEX intake_rate_network ON intake_rate (network, at);
CREATE INDEX intake_rate_at ON intake_rate (at);

-- When the last triage digest went to the team.
CREATE TABLE triage_digest (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	sent_at INTEGER NOT NULL
);
