-- Placeholder so that 0013 follows in this branch; the merge replaces it
-- with the real 0012.
SELECT 1;
