-- Hand-written (issue 11, items 4 and 16); no schema change.
--
-- Item 16: the watch outbox records a version's effective status, as every
-- other reader sees it (db/versions.ts effectiveStatus): an enabled version
-- past its expires_at already reads as its action gives it (disabled, or
-- deleted for `delete`), before the sweeper applies that action. Only the
-- version_status written changes; the kinds are as in 0003.
CREATE OR REPLACE FUNCTION coffer_watch_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  k text;
  s record;
  st text;
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
  st := CASE
    WHEN NEW.status = 'enabled' AND NEW.expires_at <= now()
      THEN CASE WHEN NEW.ephemeral_action = 'delete' THEN 'deleted' ELSE 'disabled' END
    ELSE NEW.status
  END;
  SELECT project_id, path, name INTO s FROM secrets WHERE id = NEW.secret_id;
  INSERT INTO watch_events (kind, project_id, secret_id, path, name, revision, version_status, single_access)
  VALUES (k, s.project_id, NEW.secret_id, s.path, s.name, NEW.revision, st, coalesce(NEW.expires_once_accessed, false));
  RETURN NULL;
END $$;
--> statement-breakpoint
-- Item 4: a consumed single-access version is never served again. Before
-- this fix, EnableSecretVersion could leave one enabled (and clear its
-- consumed_at; those rows cannot be told apart and are left). The ones still
-- marked consumed are disabled here, so that their status says what access
-- already does (db/versions.ts servable refuses any consumed version).
UPDATE secret_versions SET status = 'disabled', updated_at = now()
WHERE consumed_at IS NOT NULL AND status = 'enabled';
