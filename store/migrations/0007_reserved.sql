-- Placeholder so that 0008 applies on this branch; dropped when the branch
-- that owns migration 0007 is merged.
SELECT 1;
