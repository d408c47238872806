-- A member whose address and name are kept from the list's downstreams
-- and observers (an incident's reporter who asked to stay anonymous).
ALTER TABLE member ADD COLUMN anonymous INTEGER NOT NULL DEFAULT 0;
