-- Hand-written (issue 11, item 15): project names become unique in 0008.
-- Before the index, every project whose name an older project already holds
-- is renamed "<name> (<its id>)": the oldest (by created_at, then id) keeps
-- its name, nothing is deleted or merged, and ids (what grants and secrets
-- refer to) are untouched. The name is cut so that the result stays within
-- the 255-character name rule; the id suffix makes it unique.
UPDATE "projects" p
SET "name" = left(p."name", 216) || ' (' || p."id"::text || ')'
FROM (
  SELECT "id", row_number() OVER (PARTITION BY "name" ORDER BY "created_at", "id") AS n
  FROM "projects"
) d
WHERE d."id" = p."id" AND d.n > 1;
