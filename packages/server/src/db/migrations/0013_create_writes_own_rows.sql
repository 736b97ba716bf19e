-- Hand-written (issue 16, creates); no schema change. Fewer trigger calls
-- per write, with the same rows written.
--
-- 1. watch_secret ran its PL/pgSQL function on every update of a secret and
-- wrote nothing for most of them: the etag, revision and counter bumps that
-- every create, access and sweep makes. Updates now fire it only when the
-- function writes an event (the same tests, as the trigger's WHEN, which
-- runs without calling a function): a deletion requested or withdrawn, the
-- secret moved, or one of its watched settings changed.
DROP TRIGGER watch_secret ON secrets;--> statement-breakpoint
CREATE TRIGGER watch_secret AFTER INSERT OR DELETE ON secrets
  FOR EACH ROW EXECUTE FUNCTION coffer_watch_secret();--> statement-breakpoint
CREATE TRIGGER watch_secret_update AFTER UPDATE ON secrets
  FOR EACH ROW WHEN (
    (OLD.deletion_requested_at IS NULL) IS DISTINCT FROM (NEW.deletion_requested_at IS NULL)
    OR NEW.path IS DISTINCT FROM OLD.path
    OR NEW.name IS DISTINCT FROM OLD.name
    OR NEW.description IS DISTINCT FROM OLD.description
    OR NEW.tags IS DISTINCT FROM OLD.tags
    OR NEW.protected IS DISTINCT FROM OLD.protected
    OR NEW.ephemeral_ttl_ms IS DISTINCT FROM OLD.ephemeral_ttl_ms
    OR NEW.ephemeral_once IS DISTINCT FROM OLD.ephemeral_once
    OR NEW.ephemeral_action IS DISTINCT FROM OLD.ephemeral_action)
  EXECUTE FUNCTION coffer_watch_secret();--> statement-breakpoint
-- 2. A batch of creates (db/versions-batch.ts) moves each secret's
-- kept_versions in the row update it already makes, and writes its watch
-- events itself (`version_disabled` for disable_previous, `version_created`):
-- the version triggers would update the secret's row a second time and run
-- two or three functions per version. Such a statement sets
-- `coffer.create_writes_own_rows` for its transaction before it changes a
-- version, and the triggers below skip the rows changed while it is set
-- (WHEN is evaluated as each row is written). Every other change, by any
-- statement or by a replica still running older code, fires them as before.
DROP TRIGGER kept_versions_insert ON secret_versions;--> statement-breakpoint
CREATE TRIGGER kept_versions_insert AFTER INSERT ON secret_versions
  FOR EACH ROW WHEN (
    NEW.status <> 'deleted'
    AND current_setting('coffer.create_writes_own_rows', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION coffer_count_kept_versions();--> statement-breakpoint
DROP TRIGGER watch_version ON secret_versions;--> statement-breakpoint
CREATE TRIGGER watch_version AFTER UPDATE ON secret_versions
  FOR EACH ROW WHEN (current_setting('coffer.create_writes_own_rows', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION coffer_watch_version();--> statement-breakpoint
CREATE TRIGGER watch_version_insert AFTER INSERT ON secret_versions
  FOR EACH ROW WHEN (current_setting('coffer.create_writes_own_rows', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION coffer_watch_version();
