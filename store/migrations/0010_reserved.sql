-- Reserved for another branch's migration (replaced at merge).
SELECT 1;
