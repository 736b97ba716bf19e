-- The watch outbox is written by triggers, in the transaction of the change,
-- so that every write path (the RPCs, single-access consumption, the
-- sweeper) records its events and a rolled-back change records none. The
-- server NOTIFYs the other replicas after the commit (watch/feed.ts): a
-- NOTIFY here would serialize every commit on the notification lock.
INSERT INTO "watch_state" ("id") VALUES (true);
--> statement-breakpoint
CREATE FUNCTION coffer_watch_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  k text;
  s record;
BEGIN
  IF TG_OP = 'INSERT' THEN
    k := 'version_created';
  ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
    k := CASE
      WHEN NEW.consumed_at IS NOT NULL AND OLD.consumed_at IS NULL THEN 'version_consumed'
      WHEN NEW.status = 'enabled' THEN 'version_enabled'
      WHEN NEW.status = 'scheduled_for_deletion' THEN 'version_deleted'
      WHEN OLD.status = 'scheduled_for_deletion' AND NEW.status = 'disabled' THEN 'version_restored'
      WHEN OLD.status = 'enabled' AND OLD.expires_at IS NOT NULL AND OLD.expires_at <= now() THEN 'version_expired'
      WHEN NEW.status = 'deleted' THEN 'version_destroyed'
      ELSE 'version_disabled'
    END;
  ELSIF NEW.status = 'enabled' AND NEW.expires_at IS DISTINCT FROM OLD.expires_at THEN
    -- Enabled again: a new time to live.
    k := 'version_enabled';
  ELSIF NEW.description IS DISTINCT FROM OLD.description
     OR NEW.expires_at IS DISTINCT FROM OLD.expires_at
     OR NEW.expires_once_accessed IS DISTINCT FROM OLD.expires_once_accessed
     OR NEW.ephemeral_action IS DISTINCT FROM OLD.ephemeral_action THEN
    k := 'version_updated';
  ELSE
    -- Key rotation and other bookkeeping: nothing a watcher acts on.
    RETURN NULL;
  END IF;
  SELECT project_id, path, name INTO s FROM secrets WHERE id = NEW.secret_id;
  INSERT INTO watch_events (kind, project_id, secret_id, path, name, revision, version_status, single_access)
  VALUES (k, s.project_id, NEW.secret_id, s.path, s.name, NEW.revision, NEW.status, coalesce(NEW.expires_once_accessed, false));
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER watch_version AFTER INSERT OR UPDATE ON secret_versions
  FOR EACH ROW EXECUTE FUNCTION coffer_watch_version();
--> statement-breakpoint
CREATE FUNCTION coffer_watch_secret() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  k text;
  r secrets;
  moved boolean := false;
BEGIN
  IF TG_OP = 'INSERT' THEN
    k := 'secret_created';
    r := NEW;
  ELSIF TG_OP = 'DELETE' THEN
    k := CASE WHEN OLD.deletion_requested_at IS NULL THEN 'secret_deleted' ELSE 'secret_destroyed' END;
    r := OLD;
  ELSE
    r := NEW;
    moved := NEW.path IS DISTINCT FROM OLD.path OR NEW.name IS DISTINCT FROM OLD.name;
    IF OLD.deletion_requested_at IS NULL AND NEW.deletion_requested_at IS NOT NULL THEN
      k := 'secret_deleted';
    ELSIF OLD.deletion_requested_at IS NOT NULL AND NEW.deletion_requested_at IS NULL THEN
      k := 'secret_restored';
    ELSIF moved
       OR NEW.description IS DISTINCT FROM OLD.description
       OR NEW.tags IS DISTINCT FROM OLD.tags
       OR NEW.protected IS DISTINCT FROM OLD.protected
       OR NEW.ephemeral_ttl_ms IS DISTINCT FROM OLD.ephemeral_ttl_ms
       OR NEW.ephemeral_once IS DISTINCT FROM OLD.ephemeral_once
       OR NEW.ephemeral_action IS DISTINCT FROM OLD.ephemeral_action THEN
      k := 'secret_updated';
    ELSE
      -- An etag bump from a version change: the version's own event says it.
      RETURN NULL;
    END IF;
  END IF;
  INSERT INTO watch_events (kind, project_id, secret_id, path, name, previous_path, previous_name)
  VALUES (k, r.project_id, r.id, r.path, r.name,
          CASE WHEN moved THEN OLD.path END, CASE WHEN moved THEN OLD.name END);
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER watch_secret AFTER INSERT OR UPDATE OR DELETE ON secrets
  FOR EACH ROW EXECUTE FUNCTION coffer_watch_secret();
