-- OpenPGP public keys cvd knows, by fingerprint (uppercase hex). Times are
-- unix milliseconds; expires_at 0 means the key does not expire.
CREATE TABLE pgp_key (
	fingerprint TEXT    PRIMARY KEY,
	armored     BLOB    NOT NULL,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL DEFAULT 0,
	revoked     INTEGER NOT NULL DEFAULT 0,
	first_seen  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
);

-- The key pinned for an address: at most one at a time.
CREATE TABLE key_pin (
	email       TEXT    PRIMARY KEY,          -- lowercased
	fingerprint TEXT    NOT NULL REFERENCES pgp_key (fingerprint),
	pinned_at   INTEGER NOT NULL
);

-- Every change to a pin, kept for ever: a key change is never silent.
CREATE TABLE key_event (
	id              INTEGER PRIMARY KEY,
	email           TEXT    NOT NULL,
	at              INTEGER NOT NULL,
	kind            TEXT    NOT NULL CHECK (kind IN ('pinned', 'replaced', 'refreshed', 'unpinned')),
	old_fingerprint TEXT    NOT NULL DEFAULT '',
	new_fingerprint TEXT    NOT NULL DEFAULT '',
	actor           TEXT    NOT NULL,
	reason          TEXT    NOT NULL
);
CREATE INDEX key_event_email ON key_event (email, id);
