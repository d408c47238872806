-- Placeholder so that 0012 applies on this branch; dropped when the
-- branch that owns migration 0009 is merged.
SELECT 1;
