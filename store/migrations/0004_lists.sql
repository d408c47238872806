-- Mailing lists: one per incident, and the announce list.
CREATE TABLE list (
	id             INTEGER PRIMARY KEY,
	name           TEXT    NOT NULL UNIQUE,   -- "2026-001", "announce"
	kind           TEXT    NOT NULL CHECK (kind IN ('incident', 'announce')),
	title          TEXT    NOT NULL DEFAULT '',
	allow_unsigned INTEGER NOT NULL DEFAULT 0, -- members may post without a good signature
	created_at     INTEGER NOT NULL
);

CREATE TABLE member (
	id           INTEGER PRIMARY KEY,
	list_id      INTEGER NOT NULL REFERENCES list (id) ON DELETE CASCADE,
	email        TEXT    NOT NULL,              -- lowercased
	name         TEXT    NOT NULL DEFAULT '',
	role         TEXT    NOT NULL CHECK (role IN ('reporter', 'coordinator', 'fixer', 'downstream', 'observer', 'subscriber')),
	state        TEXT    NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'frozen', 'removed')),
	state_reason TEXT    NOT NULL DEFAULT '',
	failures     INTEGER NOT NULL DEFAULT 0,    -- encryption failures and permanent bounces in a row
	added_at     INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL,
	UNIQUE (list_id, email)
);

-- Posts to a list, as received and as decided.
CREATE TABLE post (
	id          INTEGER PRIMARY KEY,
	list_id     INTEGER NOT NULL REFERENCES list (id) ON DELETE CASCADE,
	spool_id    INTEGER,                       -- the received message
	message_id  TEXT    NOT NULL,              -- Message-ID of the incoming message
	sender      TEXT    NOT NULL,              -- From: address
	status      TEXT    NOT NULL CHECK (status IN ('distributed', 'held', 'duplicate', 'loop', 'refused', 'command')),
	encrypted   INTEGER NOT NULL,
	signature   TEXT    NOT NULL,              -- good, bad, unsigned, ...
	signer      TEXT    NOT NULL DEFAULT '',   -- signer fingerprint
	received_at INTEGER NOT NULL,
	archive     BLOB                            -- the opened post, encrypted to the archive key
);
CREATE UNIQUE INDEX post_message_id ON post (list_id, message_id) WHERE message_id != '';

-- Each member's copy of a post, exactly as sent (their own ciphertext):
-- the queued message, which is kept while a copy refers to it.
CREATE TABLE post_copy (
	id        INTEGER PRIMARY KEY,
	post_id   INTEGER NOT NULL REFERENCES post (id) ON DELETE CASCADE,
	member_id INTEGER NOT NULL REFERENCES member (id) ON DELETE CASCADE,
	queue_msg INTEGER NOT NULL REFERENCES queue_msg (id),
	UNIQUE (post_id, member_id)
);
CREATE INDEX post_copy_member ON post_copy (member_id, id);

-- Signatures already used for commands: a replayed signature is refused.
CREATE TABLE seen_signature (
	digest TEXT    PRIMARY KEY,
	at     INTEGER NOT NULL
);

-- Routing state per recipient of a spooled message; the message is done
-- when every recipient is.
ALTER TABLE spool_rcpt ADD COLUMN state TEXT NOT NULL DEFAULT 'new';
ALTER TABLE spool_rcpt ADD COLUMN reason TEXT NOT NULL DEFAULT '';

-- Tokens of the announce list: subscription and unsubscription
-- confirmations (they expire) and each subscriber's one-click
-- unsubscribe token (RFC 8058; no expiry).
CREATE TABLE list_token (
	token      TEXT    PRIMARY KEY,
	list_id    INTEGER NOT NULL REFERENCES list (id) ON DELETE CASCADE,
	email      TEXT    NOT NULL,
	action     TEXT    NOT NULL CHECK (action IN ('subscribe', 'unsubscribe', 'oneclick')),
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL DEFAULT 0      -- 0: never
);
CREATE INDEX list_token_email ON list_token (list_id, email, action);
