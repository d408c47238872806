-- Incidents: one per report to security@, with its list of the same name.
-- Times are unix milliseconds; 0 means "not yet".
CREATE TABLE incident (
	id               TEXT    PRIMARY KEY,          -- "2026-001"
	year             INTEGER NOT NULL,
	seq              INTEGER NOT NULL,
	state            TEXT    NOT NULL CHECK (state IN ('new', 'triage', 'confirmed', 'rejected', 'duplicate',
	                                                   'fixing', 'prenotified', 'published', 'closed')),
	privacy          TEXT    NOT NULL DEFAULT 'private' CHECK (privacy IN ('private', 'public', 'zero-day')),
	reporter         TEXT    NOT NULL DEFAULT '',  -- lowercased address
	reporter_name    TEXT    NOT NULL DEFAULT '',
	spool_id         INTEGER UNIQUE,               -- the report as received
	facts            BLOB    NOT NULL DEFAULT '{}', -- JSON: CVE, CVSS, versions, credits, ... (package embargo)
	embargo_at       INTEGER NOT NULL DEFAULT 0,   -- the public date
	embargo_override TEXT    NOT NULL DEFAULT '',  -- why the maximum embargo may be exceeded
	first_notice_at  INTEGER NOT NULL DEFAULT 0,   -- first pre-notification to downstreams
	acked_at         INTEGER NOT NULL DEFAULT 0,   -- a human of the team took the report
	escalated_at     INTEGER NOT NULL DEFAULT 0,
	published_at     INTEGER NOT NULL DEFAULT 0,
	closed_at        INTEGER NOT NULL DEFAULT 0,
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL,
	UNIQUE (year, seq)
);
CREATE INDEX incident_state ON incident (state);

-- The timeline: who did what when, with the signature that authorised it.
CREATE TABLE incident_event (
	id       INTEGER PRIMARY KEY,
	incident TEXT    NOT NULL REFERENCES incident (id),
	at       INTEGER NOT NULL,
	actor    TEXT    NOT NULL,                 -- an address, "cli:USER" or "cvd"
	signer   TEXT    NOT NULL DEFAULT '',      -- fingerprint of the signature on a keyword mail
	kind     TEXT    NOT NULL,                 -- opened, state, cve, cvss, embargo, notify, ack, ...
	detail   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX incident_event_incident ON incident_event (incident, id);

-- Message-IDs of mail belonging to an incident (the report, cvd's
-- acknowledgement), so that replies to security@ find their incident.
CREATE TABLE incident_thread (
	message_id TEXT PRIMARY KEY,
	incident   TEXT NOT NULL REFERENCES incident (id)
);

-- Downstreams told of an incident, and whether they acknowledged it.
CREATE TABLE incident_downstream (
	incident    TEXT    NOT NULL REFERENCES incident (id),
	email       TEXT    NOT NULL,
	name        TEXT    NOT NULL DEFAULT '',
	notified_at INTEGER NOT NULL,
	acked_at    INTEGER NOT NULL DEFAULT 0,
	ack_how     TEXT    NOT NULL DEFAULT '',   -- "x-ack" or "reply"
	reminded_at INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (incident, email)
) WITHOUT ROWID;
