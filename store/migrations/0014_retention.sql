-- Retention: when the raw message of a routed spool row, or the body of a
-- delivered message, was purged (unix milliseconds; 0 while kept). A
-- purged row keeps its envelope and states, with an empty raw.
ALTER TABLE spool ADD COLUMN purged_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_msg ADD COLUMN purged_at INTEGER NOT NULL DEFAULT 0;
