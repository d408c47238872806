-- Reserved number: a schema change made in parallel takes it.
SELECT 1;
