-- A body shared by several queued messages: the copies of one list post
-- differ only in each member's encrypted session key. Such a message
-- keeps its own part in queue_msg.raw and names the shared part in
-- body_id; its size is still the whole message's. The store makes the
-- message whole whenever it is read. A shared body goes with the last
-- message that names it (deleted, or purged).
CREATE TABLE queue_body (
	id   INTEGER PRIMARY KEY,
	data BLOB NOT NULL
);
ALTER TABLE queue_msg ADD COLUMN body_id INTEGER REFERENCES queue_body (id);
CREATE INDEX queue_msg_body ON queue_msg (body_id) WHERE body_id IS NOT NULL;

CREATE TRIGGER queue_body_deleted AFTER DELETE ON queue_msg WHEN old.body_id IS NOT NULL
BEGIN
	DELETE FROM queue_body WHERE id = old.body_id
		AND NOT EXISTS (SELECT 1 FROM queue_msg WHERE body_id = old.body_id);
END;
CREATE TRIGGER queue_body_released AFTER UPDATE OF body_id ON queue_msg
	WHEN old.body_id IS NOT NULL AND new.body_id IS NOT old.body_id
BEGIN
	DELETE FROM queue_body WHERE id = old.body_id
		AND NOT EXISTS (SELECT 1 FROM queue_msg WHERE body_id = old.body_id);
END;
