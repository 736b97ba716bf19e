import {
  type Secret,
  SecretService,
  SecretStatus,
  type SecretVersion,
  VersionStatus,
} from "@coffer/api";
import { skipToken, useMutation, useQuery } from "@connectrpc/connect-query";
import { useState } from "react";
import { useSecretChanged } from "../api/cache.ts";
import { CreateVersionDialog } from "../secret-value/create-version-dialog.tsx";
import { useReveal } from "../secret-value/reveal.tsx";
import { canReadPayload, canWrite, useCaller } from "../session/caller.ts";
import { ConfirmDialog } from "../ui/dialog.tsx";
import { actionLabel, formatTime, isoTime, versionStatusLabel } from "../ui/format.ts";
import { Pager } from "../ui/pager.tsx";
import { ProblemMessage, QueryState } from "../ui/problem.tsx";
import { useSecret } from "./secret.tsx";

const PAGE_SIZE = 50;
const ALL_STATUSES = [
  VersionStatus.ENABLED,
  VersionStatus.DISABLED,
  VersionStatus.SCHEDULED_FOR_DELETION,
  VersionStatus.DELETED,
];

/** Screen 6: a secret's Versions tab: every revision, its state, its value on demand. */
export function SecretVersionsScreen() {
  const { projectId, region, secret } = useSecret();
  const caller = useCaller();
  const [showDeleted, setShowDeleted] = useState(false);
  const [creating, setCreating] = useState(false);
  const [page, setPage] = useState(1);
  const changed = useSecretChanged();
  const versions = useQuery(
    SecretService.method.listSecretVersions,
    secret
      ? {
          region,
          secretId: secret.id,
          status: showDeleted ? ALL_STATUSES : [],
          page,
          pageSize: PAGE_SIZE,
        }
      : skipToken,
  );
  if (!secret) return null;
  const writer = canWrite(caller.data, projectId, secret.path);
  const reader = canReadPayload(caller.data, projectId, secret.path);
  const locked = secret.status === SecretStatus.LOCKED;
  const list = versions.data?.versions ?? [];
  const latestEnabled = list
    .filter((v) => v.status === VersionStatus.ENABLED)
    .reduce((max, v) => Math.max(max, v.revision), 0);

  return (
    <div className="versions">
      <div className="toolbar">
        <h2 className="toolbar-title">Versions</h2>
        <label className="field-check">
          <input
            type="checkbox"
            checked={showDeleted}
            onChange={(e) => {
              setShowDeleted(e.target.checked);
              setPage(1);
            }}
          />
          Show deleted versions
        </label>
        {writer && !locked && (
          <button type="button" className="btn btn-primary" onClick={() => setCreating(true)}>
            + Create version
          </button>
        )}
      </div>
      {secret.ephemeralPolicy && (
        <p className="hint">
          Every version takes this secret's ephemeral policy when it is created or enabled.
        </p>
      )}
      <QueryState query={versions} what="versions" />
      {versions.data && list.length === 0 && (
        <div className="empty">
          <p className="empty-title">No versions{showDeleted ? "" : " enabled or disabled"}.</p>
          {writer && !locked && <p>Add one with + Create version.</p>}
        </div>
      )}
      {list.length > 0 && (
        <VersionTable
          secret={secret}
          region={region}
          versions={list}
          latestEnabled={latestEnabled}
          writer={writer && !locked}
          reader={reader}
          onChanged={() => changed(region)}
        />
      )}
      <Pager
        page={page}
        pageSize={PAGE_SIZE}
        total={Number(versions.data?.totalCount ?? 0)}
        label="versions"
        onPage={setPage}
      />
      {creating && (
        <CreateVersionDialog
          secret={secret}
          onClose={() => setCreating(false)}
          onCreated={() => {
            setCreating(false);
            void changed(region);
          }}
        />
      )}
    </div>
  );
}

function VersionTable({
  secret,
  region,
  versions,
  latestEnabled,
  writer,
  reader,
  onChanged,
}: {
  secret: Secret;
  region: string;
  versions: SecretVersion[];
  latestEnabled: number;
  writer: boolean;
  reader: boolean;
  onChanged: () => void;
}) {
  const [deleting, setDeleting] = useState<number>();
  const opts = { onSuccess: onChanged };
  const enable = useMutation(SecretService.method.enableSecretVersion, opts);
  const disable = useMutation(SecretService.method.disableSecretVersion, opts);
  const remove = useMutation(SecretService.method.deleteSecretVersion, {
    onSuccess: () => {
      setDeleting(undefined);
      onChanged();
    },
    onError: () => setDeleting(undefined),
  });
  const restore = useMutation(SecretService.method.restoreSecretVersion, opts);
  const mutations = [enable, disable, remove, restore];
  const busy = mutations.some((m) => m.isPending);
  const error = mutations.find((m) => m.error)?.error;
  const target = (revision: number) => {
    for (const m of mutations) m.reset();
    return { region, secretId: secret.id, revision: String(revision), etag: secret.etag };
  };

  return (
    <>
      <ProblemMessage error={error} />
      <div className="table-wrap">
        <table className="table">
          <caption className="visually-hidden">Versions of {secret.name}</caption>
          <thead>
            <tr>
              <th scope="col">Revision</th>
              <th scope="col">Status</th>
              <th scope="col">Latest</th>
              <th scope="col">Created</th>
              <th scope="col">Description</th>
              <th scope="col">Ephemeral</th>
              {reader && <th scope="col">Value</th>}
              {writer && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {versions.map((v) => (
              <VersionRow
                key={v.revision}
                secret={secret}
                region={region}
                version={v}
                latestEnabled={latestEnabled}
                writer={writer}
                reader={reader}
                busy={busy}
                onEnable={() => enable.mutate(target(v.revision))}
                onDisable={() => disable.mutate(target(v.revision))}
                onDelete={() => {
                  for (const m of mutations) m.reset();
                  setDeleting(v.revision);
                }}
                onRestore={() => restore.mutate(target(v.revision))}
                onChanged={onChanged}
              />
            ))}
          </tbody>
        </table>
      </div>
      {deleting !== undefined && (
        <ConfirmDialog
          title={`Delete version ${deleting}?`}
          confirmLabel="Delete version"
          danger
          busy={remove.isPending}
          onCancel={() => setDeleting(undefined)}
          onConfirm={() => remove.mutate(target(deleting))}
        >
          <p>
            The version is scheduled for deletion: it cannot be read, and can be restored until the
            restore window ends. It comes back disabled.
          </p>
        </ConfirmDialog>
      )}
    </>
  );
}

function VersionRow({
  secret,
  region,
  version: v,
  latestEnabled,
  writer,
  reader,
  busy,
  onEnable,
  onDisable,
  onDelete,
  onRestore,
  onChanged,
}: {
  secret: Secret;
  region: string;
  version: SecretVersion;
  latestEnabled: number;
  writer: boolean;
  reader: boolean;
  busy: boolean;
  onEnable: () => void;
  onDisable: () => void;
  onDelete: () => void;
  onRestore: () => void;
  onChanged: () => void;
}) {
  const singleAccess = v.ephemeralProperties?.expiresOnceAccessed ?? false;
  const readable = reader && v.status === VersionStatus.ENABLED;
  const reveal = useReveal({
    region,
    secretId: secret.id,
    secretName: secret.name,
    type: secret.type,
    revision: v.revision,
    singleAccess,
    onAccessed: singleAccess ? onChanged : undefined,
    readable,
  });
  const columns = 6 + (reader ? 1 : 0) + (writer ? 1 : 0);
  return (
    <>
      <tr aria-label={`Version ${v.revision}`}>
        <td className="revision">{v.revision}</td>
        <td>
          <StatusBadge status={v.status} />
        </td>
        <td className="nowrap">
          {v.latest && <span className="badge">Latest</span>}
          {v.revision === latestEnabled && <span className="badge badge-ok">Latest enabled</span>}
        </td>
        <td className="nowrap">
          <time dateTime={isoTime(v.createdAt)}>{formatTime(v.createdAt)}</time>
        </td>
        <td className={v.description === "" ? "muted" : undefined}>
          {v.description === "" ? "—" : v.description}
        </td>
        <td>
          <Ephemeral version={v} />
        </td>
        {reader && (
          <td className="value-cell">
            {readable || reveal.shown ? (
              reveal.controls
            ) : (
              <span className="muted">
                Not readable while {versionStatusLabel(v.status).toLowerCase()}
              </span>
            )}
          </td>
        )}
        {writer && (
          <td>
            <div className="row-actions">
              {v.status === VersionStatus.DISABLED && (
                <button type="button" className="btn btn-small" disabled={busy} onClick={onEnable}>
                  Enable
                </button>
              )}
              {v.status === VersionStatus.ENABLED && (
                <button type="button" className="btn btn-small" disabled={busy} onClick={onDisable}>
                  Disable
                </button>
              )}
              {(v.status === VersionStatus.ENABLED || v.status === VersionStatus.DISABLED) && (
                <button
                  type="button"
                  className="btn btn-small btn-danger"
                  disabled={busy}
                  onClick={onDelete}
                >
                  Delete
                </button>
              )}
              {v.status === VersionStatus.SCHEDULED_FOR_DELETION && (
                <button type="button" className="btn btn-small" disabled={busy} onClick={onRestore}>
                  Restore
                </button>
              )}
            </div>
          </td>
        )}
      </tr>
      {reveal.value && (
        <tr className="value-row">
          <td colSpan={columns}>{reveal.value}</td>
        </tr>
      )}
    </>
  );
}

function StatusBadge({ status }: { status: VersionStatus }) {
  const cls =
    status === VersionStatus.ENABLED
      ? "badge badge-ok"
      : status === VersionStatus.DISABLED
        ? "badge"
        : "badge badge-danger";
  return <span className={cls}>{versionStatusLabel(status)}</span>;
}

function Ephemeral({ version }: { version: SecretVersion }) {
  const p = version.ephemeralProperties;
  if (p === undefined) return <span className="muted">—</span>;
  return (
    <ul className="plain-list">
      {p.expiresAt && (
        <li>
          Expires <time dateTime={isoTime(p.expiresAt)}>{formatTime(p.expiresAt)}</time>
        </li>
      )}
      {p.expiresOnceAccessed && (
        <li>
          Single access
          {version.status === VersionStatus.ENABLED ? "" : ": consumed or disabled"}
        </li>
      )}
      <li className="muted">then {actionLabel(p.action)}</li>
    </ul>
  );
}
