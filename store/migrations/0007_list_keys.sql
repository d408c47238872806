-- Keys trusted on one list only: a key that came with a report (for that
-- report's incident), or one a coordinator set with x-add-key. Such a key
-- is used on its list before the address's global pin (key_pin), which
-- only the configuration and the administrator set. Changes are recorded
-- in key_event like those of global pins.
CREATE TABLE list_key (
	list_id     INTEGER NOT NULL REFERENCES list (id) ON DELETE CASCADE,
	email       TEXT    NOT NULL,              -- lowercased
	fingerprint TEXT    NOT NULL REFERENCES pgp_key (fingerprint),
	source      TEXT    NOT NULL,              -- "came with the report, unverified", "x-add-key by ..."
	actor       TEXT    NOT NULL,
	at          INTEGER NOT NULL,
	PRIMARY KEY (list_id, email)
);
