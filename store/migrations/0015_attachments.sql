-- Files sent with the pre-notification (patches, a git bundle, a
-- reproducer), each sealed to the project key at rest, and which
-- downstream received which.
CREATE TABLE incident_attachment (
	id           INTEGER PRIMARY KEY,
	incident     TEXT    NOT NULL REFERENCES incident (id),
	name         TEXT    NOT NULL,
	content_type TEXT    NOT NULL,
	size         INTEGER NOT NULL,            -- bytes of the file
	sealed       BLOB    NOT NULL,            -- PGP/MIME, to the project key
	added_at     INTEGER NOT NULL,            -- unix milliseconds
	added_by     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX incident_attachment_incident ON incident_attachment (incident);

CREATE TABLE downstream_attachment (
	incident      TEXT    NOT NULL,
	email         TEXT    NOT NULL,
	attachment_id INTEGER NOT NULL REFERENCES incident_attachment (id),
	sent_at       INTEGER NOT NULL,
	PRIMARY KEY (incident, email, attachment_id)
) WITHOUT ROWID;
