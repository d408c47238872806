-- IMAP UIDs count each mailbox's own messages: 1, 2, 3, ... with no gaps
-- from other lists or other members (they were row ids shared by all
-- mailboxes, so a member saw from the gaps how much mail went elsewhere).
-- A mailbox's last UID is kept in imap_uid_last and never goes back, so a
-- UID is never reused even when a message is dropped.
CREATE TABLE imap_uid_last (
	box  TEXT    PRIMARY KEY,   -- 'm:' member id (incident), 'a' (Announce), 'i:' lowercased address (INBOX)
	last INTEGER NOT NULL
) WITHOUT ROWID;

ALTER TABLE post_copy ADD COLUMN imap_uid INTEGER;  -- in the member's incident mailbox
ALTER TABLE post ADD COLUMN imap_uid INTEGER;       -- in Announce (distributed announce posts)
ALTER TABLE queue ADD COLUMN imap_uid INTEGER;      -- in the recipient's INBOX (notices, not list copies)

-- Number what exists, in the order of the old UIDs.
UPDATE post_copy SET imap_uid = r.n FROM (
	SELECT id, row_number() OVER (PARTITION BY member_id ORDER BY id) AS n FROM post_copy) r
	WHERE r.id = post_copy.id;
UPDATE post SET imap_uid = r.n FROM (
	SELECT p.id, row_number() OVER (ORDER BY p.id) AS n FROM post p JOIN list l ON l.id = p.list_id
	WHERE l.kind = 'announce' AND p.status = 'distributed' AND p.archive IS NOT NULL) r
	WHERE r.id = post.id;
UPDATE queue SET imap_uid = r.n FROM (
	SELECT q.id, row_number() OVER (PARTITION BY lower(q.rcpt) ORDER BY q.msg_id, q.id) AS n FROM queue q JOIN queue_msg qm ON qm.id = q.msg_id
	WHERE qm.kind NOT IN ('post', 'announce') AND NOT EXISTS (SELECT 1 FROM post_copy pc WHERE pc.queue_msg = qm.id)) r
	WHERE r.id = queue.id;
INSERT INTO imap_uid_last (box, last) SELECT 'm:' || member_id, MAX(imap_uid) FROM post_copy GROUP BY member_id;
INSERT INTO imap_uid_last (box, last) SELECT 'a', MAX(imap_uid) FROM post WHERE imap_uid IS NOT NULL HAVING COUNT(*) > 0;
INSERT INTO imap_uid_last (box, last) SELECT 'i:' || lower(rcpt), MAX(imap_uid) FROM queue WHERE imap_uid IS NOT NULL GROUP BY lower(rcpt);

-- Flags follow their messages to the new UIDs (negated first, so that no
-- two rows of a mailbox ever share a UID on the way).
DELETE FROM imap_flag WHERE mailbox = 'INBOX' AND NOT EXISTS (SELECT 1 FROM queue q JOIN imap_account a ON a.id = imap_flag.account_id
	WHERE q.msg_id = imap_flag.uid AND q.rcpt = a.email COLLATE NOCASE AND q.imap_uid IS NOT NULL);
UPDATE imap_flag SET uid = -(SELECT q.imap_uid FROM queue q JOIN imap_account a ON a.id = imap_flag.account_id
	WHERE q.msg_id = imap_flag.uid AND q.rcpt = a.email COLLATE NOCASE AND q.imap_uid IS NOT NULL) WHERE mailbox = 'INBOX';
DELETE FROM imap_flag WHERE mailbox = 'Announce' AND NOT EXISTS (SELECT 1 FROM post p WHERE p.id = imap_flag.uid AND p.imap_uid IS NOT NULL);
UPDATE imap_flag SET uid = -(SELECT p.imap_uid FROM post p WHERE p.id = imap_flag.uid) WHERE mailbox = 'Announce';
DELETE FROM imap_flag WHERE mailbox LIKE 'Incidents/%' AND NOT EXISTS (SELECT 1 FROM post_copy c WHERE c.id = imap_flag.uid);
UPDATE imap_flag SET uid = -(SELECT c.imap_uid FROM post_copy c WHERE c.id = imap_flag.uid) WHERE mailbox LIKE 'Incidents/%';
UPDATE imap_flag SET uid = -uid WHERE uid < 0;

-- The UIDs changed: every mailbox gets a new UIDVALIDITY, so that clients
-- forget what they cached (RFC 3501 2.3.1.1).
UPDATE imap_setting SET value = value + 1 WHERE name = 'announce_validity';
UPDATE imap_account SET inbox_validity = inbox_validity + 1;
INSERT INTO imap_setting (name, value) VALUES ('incident_validity_offset', 1);

-- New messages take the next UID of their mailbox.
CREATE TRIGGER imap_uid_post_copy AFTER INSERT ON post_copy
BEGIN
	INSERT INTO imap_uid_last (box, last) VALUES ('m:' || new.member_id, 1)
		ON CONFLICT (box) DO UPDATE SET last = last + 1;
	UPDATE post_copy SET imap_uid = (SELECT last FROM imap_uid_last WHERE box = 'm:' || new.member_id) WHERE id = new.id;
END;

CREATE TRIGGER imap_uid_announce AFTER INSERT ON post
	WHEN new.status = 'distributed' AND new.archive IS NOT NULL AND (SELECT kind FROM list WHERE id = new.list_id) = 'announce'
BEGIN
	INSERT INTO imap_uid_last (box, last) VALUES ('a', 1)
		ON CONFLICT (box) DO UPDATE SET last = last + 1;
	UPDATE post SET imap_uid = (SELECT last FROM imap_uid_last WHERE box = 'a') WHERE id = new.id;
END;

CREATE TRIGGER imap_uid_announce_update AFTER UPDATE OF status, archive ON post
	WHEN new.imap_uid IS NULL AND new.status = 'distributed' AND new.archive IS NOT NULL
		AND (SELECT kind FROM list WHERE id = new.list_id) = 'announce'
BEGIN
	INSERT INTO imap_uid_last (box, last) VALUES ('a', 1)
		ON CONFLICT (box) DO UPDATE SET last = last + 1;
	UPDATE post SET imap_uid = (SELECT last FROM imap_uid_last WHERE box = 'a') WHERE id = new.id;
END;

CREATE TRIGGER imap_uid_inbox AFTER INSERT ON queue
	WHEN (SELECT kind FROM queue_msg WHERE id = new.msg_id) NOT IN ('post', 'announce')
BEGIN
	INSERT INTO imap_uid_last (box, last) VALUES ('i:' || lower(new.rcpt), 1)
		ON CONFLICT (box) DO UPDATE SET last = last + 1;
	UPDATE queue SET imap_uid = (SELECT last FROM imap_uid_last WHERE box = 'i:' || lower(new.rcpt)) WHERE id = new.id;
END;

-- UIDs are no longer queue_msg ids: a dropped notice takes its flags with
-- it, and nothing is renumbered.
DROP TRIGGER imap_queue_msg_deleted;
CREATE TRIGGER imap_queue_deleted AFTER DELETE ON queue WHEN old.imap_uid IS NOT NULL
BEGIN
	DELETE FROM imap_flag WHERE mailbox = 'INBOX' AND uid = old.imap_uid
		AND account_id IN (SELECT id FROM imap_account WHERE email = lower(old.rcpt));
END;

CREATE INDEX queue_rcpt_uid ON queue (rcpt COLLATE NOCASE, imap_uid) WHERE imap_uid IS NOT NULL;
CREATE INDEX post_copy_member_uid ON post_copy (member_id, imap_uid);
CREATE INDEX post_imap_uid ON post (imap_uid) WHERE imap_uid IS NOT NULL;
