-- A body shared by several stored messages: the copies of one list post
-- (queued for each member, and the archive copy) differ only in their
-- recipient's encrypted session key. Such a message keeps its own part
-- (queue_msg.raw, post.archive) and names the shared one (body_id,
-- archive_body); a queued message's size is still the whole message's.
-- The store makes the message whole whenever it is read. A shared body
-- goes with the last message that names it (deleted, or purged).
-- A body is stored in parts of at most 1 MiB, in id order: SQLite
-- copies each value it writes or reads whole.
CREATE TABLE shared_body (
	id   INTEGER PRIMARY KEY,
	size INTEGER NOT NULL
);
CREATE TABLE shared_body_part (
	id      INTEGER PRIMARY KEY,
	body_id INTEGER NOT NULL REFERENCES shared_body (id) ON DELETE CASCADE,
	data    BLOB    NOT NULL
);
CREATE INDEX shared_body_part_body ON shared_body_part (body_id, id);
ALTER TABLE queue_msg ADD COLUMN body_id INTEGER REFERENCES shared_body (id);
ALTER TABLE post ADD COLUMN archive_body INTEGER REFERENCES shared_body (id);
CREATE INDEX queue_msg_body ON queue_msg (body_id) WHERE body_id IS NOT NULL;
CREATE INDEX post_archive_body ON post (archive_body) WHERE archive_body IS NOT NULL;

CREATE TRIGGER shared_body_queue_deleted AFTER DELETE ON queue_msg WHEN old.body_id IS NOT NULL
BEGIN
	DELETE FROM shared_body WHERE id = old.body_id
		AND NOT EXISTS (SELECT 1 FROM queue_msg WHERE body_id = old.body_id)
		AND NOT EXISTS (SELECT 1 FROM post WHERE archive_body = old.body_id);
END;
CREATE TRIGGER shared_body_queue_released AFTER UPDATE OF body_id ON queue_msg
	WHEN old.body_id IS NOT NULL AND new.body_id IS NOT old.body_id
BEGIN
	DELETE FROM shared_body WHERE id = old.body_id
		AND NOT EXISTS (SELECT 1 FROM queue_msg WHERE body_id = old.body_id)
		AND NOT EXISTS (SELECT 1 FROM post WHERE archive_body = old.body_id);
END;
CREATE TRIGGER shared_body_post_deleted AFTER DELETE ON post WHEN old.archive_body IS NOT NULL
BEGIN
	DELETE FROM shared_body WHERE id = old.archive_body
		AND NOT EXISTS (SELECT 1 FROM queue_msg WHERE body_id = old.archive_body)
		AND NOT EXISTS (SELECT 1 FROM post WHERE archive_body = old.archive_body);
END;
