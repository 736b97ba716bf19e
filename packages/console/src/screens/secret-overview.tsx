import { EphemeralAction, type Secret, SecretService, SecretStatus } from "@coffer/api";
import { useMutation } from "@connectrpc/connect-query";
import { useNavigate } from "@tanstack/react-router";
import { type FormEvent, useState } from "react";
import { useSecretChanged } from "../api/cache.ts";
import { describeError } from "../api/errors.ts";
import { canWrite, useCaller } from "../session/caller.ts";
import { ConfirmDialog } from "../ui/dialog.tsx";
import { formatDuration, formatTime, fullPath, isoTime, typeLabel } from "../ui/format.ts";
import { ProblemMessage } from "../ui/problem.tsx";
import { TagEditor } from "../ui/tag-editor.tsx";
import { useSecret } from "./secret.tsx";

/** Screen 5: a secret's Overview tab: what it is, and the changes a secret allows. */
export function SecretOverviewScreen() {
  const { projectId, region, secret } = useSecret();
  const caller = useCaller();
  if (!secret) return null;
  const writer = canWrite(caller.data, projectId, secret.path);
  const locked = secret.status === SecretStatus.LOCKED;
  return (
    <div className="overview">
      <h2 className="visually-hidden">Overview</h2>
      {locked && (
        <div className="notice notice-warn" role="status">
          This secret is scheduled for deletion (since {formatTime(secret.deletionRequestedAt)}): it
          cannot be read or changed until it is restored, and is destroyed for good when the restore
          window ends.
        </div>
      )}
      <section className="card" aria-labelledby="details-heading">
        <h3 id="details-heading" className="card-title">
          Details
        </h3>
        <dl className="props">
          <dt>Type</dt>
          <dd>{typeLabel(secret.type)}</dd>
          <dt>Path</dt>
          <dd className="mono">{fullPath(secret.path, secret.name)}</dd>
          <dt>Region</dt>
          <dd>
            <strong>{secret.region}</strong> <span className="badge">cannot be moved</span>
            <span className="hint">A secret stays in the region it was created in.</span>
          </dd>
          <dt>Secret ID</dt>
          <dd className="mono">{secret.id}</dd>
          <dt>Versions</dt>
          <dd>{secret.versionCount}</dd>
          <dt>Created</dt>
          <dd>
            <time dateTime={isoTime(secret.createdAt)}>{formatTime(secret.createdAt)}</time>
          </dd>
          <dt>Updated</dt>
          <dd>
            <time dateTime={isoTime(secret.updatedAt)}>{formatTime(secret.updatedAt)}</time>
          </dd>
          <dt>Description</dt>
          <dd>
            <DescriptionEditor secret={secret} region={region} editable={writer && !locked} />
          </dd>
          <dt>Tags</dt>
          <dd>
            <TagEditor secret={secret} region={region} editable={writer && !locked} />
          </dd>
        </dl>
      </section>

      <Protection secret={secret} region={region} editable={writer && !locked} />
      <EphemeralPolicyCard secret={secret} />
      {writer && <DeleteOrRestore secret={secret} projectId={projectId} region={region} />}
    </div>
  );
}

function DescriptionEditor({
  secret,
  region,
  editable,
}: {
  secret: Secret;
  region: string;
  editable: boolean;
}) {
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(secret.description);
  const changed = useSecretChanged();
  const update = useMutation(SecretService.method.updateSecret, {
    onSuccess: async (res) => {
      setEditing(false);
      await changed(region, res.secret);
    },
  });
  const problem = update.error ? describeError(update.error) : undefined;
  if (!editing) {
    return (
      <div className="edit-row">
        <span className={secret.description === "" ? "muted" : undefined}>
          {secret.description === "" ? "No description" : secret.description}
        </span>
        {editable && (
          <button
            type="button"
            className="btn btn-small"
            onClick={() => {
              setText(secret.description);
              update.reset();
              setEditing(true);
            }}
          >
            Edit description
          </button>
        )}
      </div>
    );
  }
  function save(e: FormEvent) {
    e.preventDefault();
    update.mutate({ region, secretId: secret.id, description: text, etag: secret.etag });
  }
  return (
    <form onSubmit={save} className="edit-form">
      <label htmlFor="description" className="visually-hidden">
        Description
      </label>
      <textarea
        id="description"
        rows={3}
        maxLength={1024}
        value={text}
        onChange={(e) => setText(e.target.value)}
        aria-invalid={problem !== undefined}
        aria-describedby={problem ? "description-error" : undefined}
      />
      {problem && (
        <p id="description-error" className="field-error" role="alert">
          {problem.message}
        </p>
      )}
      <div className="actions">
        <button type="submit" className="btn btn-primary btn-small" disabled={update.isPending}>
          Save description
        </button>
        <button type="button" className="btn btn-small" onClick={() => setEditing(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function Protection({
  secret,
  region,
  editable,
}: {
  secret: Secret;
  region: string;
  editable: boolean;
}) {
  const changed = useSecretChanged();
  const onSuccess = async (res: { secret?: Secret }) => changed(region, res.secret);
  const protect = useMutation(SecretService.method.protectSecret, { onSuccess });
  const unprotect = useMutation(SecretService.method.unprotectSecret, { onSuccess });
  const busy = protect.isPending || unprotect.isPending;
  function toggle(on: boolean) {
    protect.reset();
    unprotect.reset();
    const req = { region, secretId: secret.id, etag: secret.etag };
    if (on) protect.mutate(req);
    else unprotect.mutate(req);
  }
  return (
    <section className="card" aria-labelledby="protection-heading">
      <h3 id="protection-heading" className="card-title">
        Protection
      </h3>
      <label className="switch">
        <input
          type="checkbox"
          role="switch"
          checked={secret.protected}
          aria-checked={secret.protected}
          disabled={!editable || busy}
          onChange={(e) => toggle(e.target.checked)}
          aria-describedby="protection-help"
        />
        Secret protection
      </label>
      <p id="protection-help" className="hint">
        {secret.protected
          ? "This secret is protected: it cannot be deleted until protection is turned off. Its versions can still be managed."
          : "Not protected. Turn protection on to prevent this secret from being deleted."}
      </p>
      <ProblemMessage error={protect.error ?? unprotect.error} />
    </section>
  );
}

function EphemeralPolicyCard({ secret }: { secret: Secret }) {
  const policy = secret.ephemeralPolicy;
  return (
    <section className="card" aria-labelledby="policy-heading">
      <h3 id="policy-heading" className="card-title">
        Ephemeral policy
      </h3>
      {policy === undefined ? (
        <p className="muted">
          None: versions of this secret do not expire. An ephemeral policy can only be set when a
          secret is created.
        </p>
      ) : (
        <>
          <dl className="props">
            <dt>Single access</dt>
            <dd>{policy.expiresOnceAccessed ? "On: each version can be read only once" : "Off"}</dd>
            <dt>Time to live</dt>
            <dd>
              {policy.timeToLive
                ? `${formatDuration(policy.timeToLive)} after a version is created or enabled`
                : "Off"}
            </dd>
            <dt>On expiry</dt>
            <dd>
              {policy.action === EphemeralAction.DELETE
                ? "The version's value is destroyed at once (no restore window)"
                : "The version is disabled"}
            </dd>
          </dl>
          <p className="hint">
            This policy was set when the secret was created and cannot be removed. It applies to
            every version of the secret, including those created later.
          </p>
        </>
      )}
    </section>
  );
}

function DeleteOrRestore({
  secret,
  projectId,
  region,
}: {
  secret: Secret;
  projectId: string;
  region: string;
}) {
  const [confirming, setConfirming] = useState(false);
  const changed = useSecretChanged();
  const navigate = useNavigate();
  const remove = useMutation(SecretService.method.deleteSecret, {
    onSuccess: async (res) => {
      setConfirming(false);
      await changed(region, res.secret);
      if (res.secret === undefined) {
        // Deleted at once (an ephemeral secret): nothing left to show.
        await navigate({
          to: "/p/$projectId/$region/secrets",
          params: { projectId, region },
          search: { path: secret.path },
        });
      }
    },
    onError: () => setConfirming(false),
  });
  const restore = useMutation(SecretService.method.restoreSecret, {
    onSuccess: async (res) => changed(region, res.secret),
  });
  const locked = secret.status === SecretStatus.LOCKED;
  return (
    <section className="card danger-zone" aria-labelledby="delete-heading">
      <h3 id="delete-heading" className="card-title">
        {locked ? "Restore" : "Delete"}
      </h3>
      {locked ? (
        <>
          <p>Restoring cancels the deletion: the secret and its versions come back as they were.</p>
          <button
            type="button"
            className="btn btn-primary"
            disabled={restore.isPending}
            onClick={() => restore.mutate({ region, secretId: secret.id })}
          >
            Restore secret
          </button>
          <ProblemMessage error={restore.error} />
        </>
      ) : (
        <>
          <p>
            {secret.ephemeralPolicy
              ? "An ephemeral secret is deleted at once, with its versions: it cannot be restored."
              : "Deleting schedules the secret for deletion: it can be restored until the restore window ends, then it is destroyed for good."}
          </p>
          <button
            type="button"
            className="btn btn-danger"
            onClick={() => {
              remove.reset();
              setConfirming(true);
            }}
          >
            Delete secret
          </button>
          <ProblemMessage error={remove.error} />
          {confirming && (
            <ConfirmDialog
              title={`Delete ${secret.name}?`}
              confirmLabel="Delete"
              danger
              busy={remove.isPending}
              onCancel={() => setConfirming(false)}
              onConfirm={() => remove.mutate({ region, secretId: secret.id, etag: secret.etag })}
            >
              <p>
                {secret.ephemeralPolicy
                  ? "This ephemeral secret will be deleted at once, with every version. This cannot be undone."
                  : "The secret and its versions will be scheduled for deletion. You can restore it during the restore window."}
              </p>
            </ConfirmDialog>
          )}
        </>
      )}
    </section>
  );
}
