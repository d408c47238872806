-- What operators did with the CLI outside an incident's timeline (queue
-- retries and drops, triage decisions, IMAP passwords issued), under
-- their name.
CREATE TABLE operator_event (
	id      INTEGER PRIMARY KEY,
	at      INTEGER NOT NULL,             -- unix milliseconds
	actor   TEXT    NOT NULL,             -- "cli:NAME"
	action  TEXT    NOT NULL,             -- "queue retry", "triage drop", ...
	subject TEXT    NOT NULL,             -- the row, report or address acted on
	detail  TEXT    NOT NULL DEFAULT ''
);
