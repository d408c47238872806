-- Dependency advisories: an OSV advisory that matched a component the
-- project ships opens one incident, once; later checks find it here.
CREATE TABLE dependency_advisory (
	advisory  TEXT    PRIMARY KEY,                    -- "GHSA-54rr-7fvw-6x8f"
	incident  TEXT    NOT NULL REFERENCES incident (id),
	modified  TEXT    NOT NULL DEFAULT '',            -- the record's "modified" when first seen
	opened_at INTEGER NOT NULL                        -- unix milliseconds
);
CREATE INDEX dependency_advisory_incident ON dependency_advisory (incident);

-- Each component (at its version) an advisory matched, and when.
CREATE TABLE dependency_match (
	advisory  TEXT    NOT NULL REFERENCES dependency_advisory (advisory),
	ecosystem TEXT    NOT NULL,
	name      TEXT    NOT NULL,
	version   TEXT    NOT NULL,
	source    TEXT    NOT NULL DEFAULT '',            -- the lockfile, or '' when named in cvd.toml
	found_at  INTEGER NOT NULL,
	PRIMARY KEY (advisory, ecosystem, name, version)
) WITHOUT ROWID;

-- When the last dependency check ran (the daily check of cvd serve).
CREATE TABLE dependency_check (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	checked_at INTEGER NOT NULL,
	result     TEXT    NOT NULL DEFAULT ''
);
