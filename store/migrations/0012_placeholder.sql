-- Placeholder so that 0015 applies on this branch; dropped at merge (the
-- branch that owns 0012 brings the real one).
SELECT 1;
