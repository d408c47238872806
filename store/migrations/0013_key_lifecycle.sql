-- Warnings that a pinned key expires soon: one per address, key and
-- expiry date, so that a key extended and nearing its new date is warned
-- about again.
CREATE TABLE key_expiry_notice (
	email       TEXT    NOT NULL,
	fingerprint TEXT    NOT NULL,
	expires_at  INTEGER NOT NULL,
	sent_at     INTEGER NOT NULL,
	PRIMARY KEY (email, fingerprint, expires_at)
) WITHOUT ROWID;

-- Changes of the project's own key: rotations and revocations.
CREATE TABLE project_key_event (
	id              INTEGER PRIMARY KEY,
	at              INTEGER NOT NULL,
	kind            TEXT    NOT NULL CHECK (kind IN ('rotated', 'revoked')),
	fingerprint     TEXT    NOT NULL,           -- the key rotated away from, or revoked
	new_fingerprint TEXT    NOT NULL DEFAULT '', -- rotated: the new key
	actor           TEXT    NOT NULL,
	reason          TEXT    NOT NULL DEFAULT '',
	notified        INTEGER NOT NULL DEFAULT 0   -- rotated: members sent the new key
);
