-- IMAP accounts: one per member address, across lists. The password is an
-- app password cvd generated and sent sealed to the member; only its
-- argon2id hash is kept.
CREATE TABLE imap_account (
	id             INTEGER PRIMARY KEY,
	email          TEXT    NOT NULL UNIQUE,   -- lowercased
	password_hash  TEXT    NOT NULL,          -- $argon2id$v=19$m=...,t=...,p=...$salt$hash
	inbox_validity INTEGER NOT NULL,          -- UIDVALIDITY of the account's INBOX
	created_at     INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL
);

-- Flags an account set on a message: \Seen and the others are per account,
-- never shared. mailbox is the IMAP name, uid the message's UID there.
CREATE TABLE imap_flag (
	account_id INTEGER NOT NULL REFERENCES imap_account (id) ON DELETE CASCADE,
	mailbox    TEXT    NOT NULL,
	uid        INTEGER NOT NULL,
	flags      TEXT    NOT NULL,              -- space-separated
	PRIMARY KEY (account_id, mailbox, uid)
) WITHOUT ROWID;

-- Values the IMAP server keeps, such as the Announce mailbox's UIDVALIDITY.
CREATE TABLE imap_setting (
	name  TEXT    PRIMARY KEY,
	value INTEGER NOT NULL
);
INSERT INTO imap_setting (name, value) VALUES ('announce_validity', CAST(strftime('%s', 'now') AS INTEGER));

-- An account's INBOX is the queued mail to its address that is not a list
-- copy; its UIDs are queue_msg ids. Incident mailboxes and Announce use
-- post_copy and post ids.
CREATE INDEX queue_rcpt ON queue (rcpt COLLATE NOCASE, msg_id);
CREATE INDEX member_email ON member (email);
CREATE INDEX post_copy_queue_msg ON post_copy (queue_msg);
CREATE INDEX post_list ON post (list_id, id);

-- A queue_msg id is reused by SQLite only when the highest one is deleted:
-- then every INBOX gets a new UIDVALIDITY, so that no client ever sees a
-- UID name two messages. Flags set on a deleted message go with it.
CREATE TRIGGER imap_queue_msg_deleted AFTER DELETE ON queue_msg
BEGIN
	DELETE FROM imap_flag WHERE mailbox = 'INBOX' AND uid = old.id;
	UPDATE imap_account SET inbox_validity = inbox_validity + 1
		WHERE old.id > COALESCE((SELECT MAX(id) FROM queue_msg), 0);
END;
