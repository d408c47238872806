-- Incoming mail, committed before the SMTP server answers 250.
CREATE TABLE spool (
	id          INTEGER PRIMARY KEY,
	received_at INTEGER NOT NULL,            -- unix milliseconds
	remote_addr TEXT    NOT NULL,
	helo        TEXT    NOT NULL,
	mail_from   TEXT    NOT NULL,            -- "" for the null sender
	tls         INTEGER NOT NULL DEFAULT 0,  -- 1 when received over TLS
	size        INTEGER NOT NULL,
	raw         BLOB    NOT NULL,            -- the message exactly as received
	state       TEXT    NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'done', 'failed')),
	error       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX spool_state ON spool (state, id);

CREATE TABLE spool_rcpt (
	spool_id INTEGER NOT NULL REFERENCES spool (id) ON DELETE CASCADE,
	rcpt     TEXT    NOT NULL,
	PRIMARY KEY (spool_id, rcpt)
) WITHOUT ROWID;
