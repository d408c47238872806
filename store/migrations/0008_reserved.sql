-- Placeholder so that 0009 applies on this branch; dropped when the branch
-- that owns migration 0008 is merged.
SELECT 1;
