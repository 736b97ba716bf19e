import { crc32 } from "node:zlib";
import { open, versionAad } from "../crypto/envelope.ts";
import type { KeyRing } from "../crypto/key-ring.ts";
import type { AccessParams, AccessRow, SecretLookup } from "../db/access.ts";
import type { Db, Executor } from "../db/client.ts";
import { findSecret, findSecretByPath } from "../db/secrets.ts";
import { findVersion, type SealedRow, unconsumeVersion } from "../db/versions.ts";
import { resolveAddress } from "./addressing.ts";
import { auditParams, markRecorded, noteFacts, retractRecorded, secretFacts } from "./audit.ts";
import { authorizeSecret, scopesFor, secretNotFound } from "./authz.ts";
import type { Caller, Principal } from "./caller.ts";
import type { DomainDeps, RegionDb } from "./context.ts";
import { failedPrecondition, notFound } from "./errors.ts";
import type { SecretKind } from "./payload-types.ts";
import { versionNotFound } from "./read-versions.ts";
import { normalizePath, parseRevision, type RevisionSelector, validateName } from "./validation.ts";

export interface AccessResult {
  secretId: string;
  revision: number;
  data: Uint8Array;
  dataCrc32: number;
  type: SecretKind;
  /** Whether the version is single-access (consumed by this call unless `noConsume`). */
  singleAccess: boolean;
}

/**
 * With `noConsume`, a single-access version is not consumed: the call
 * answers with its revision, `singleAccess` set and no data, so a watcher
 * can learn what "latest_enabled" is without spending it.
 */
interface AccessOptions {
  noConsume?: boolean;
}

/** Returns a version's payload; a single-access version is consumed by this call. */
export async function accessVersion(
  domain: DomainDeps,
  caller: Caller,
  input: { region: string; secretId: string; revision: string } & AccessOptions,
): Promise<AccessResult> {
  const { region, id } = resolveAddress(domain, caller, input, "secretId");
  const ref = parseRevision(input.revision);
  const lookup = { by: "id", region: region.name, secretId: id } as const;
  return serve(domain, caller, region, lookup, ref, input, () => secretNotFound(id));
}

/** Like accessVersion, addressing the secret by project, path and name. */
export async function accessVersionByPath(
  domain: DomainDeps,
  caller: Caller,
  input: {
    region: string;
    projectId: string;
    path: string;
    name: string;
    revision: string;
  } & AccessOptions,
): Promise<AccessResult> {
  const { region, id: projectId } = resolveAddress(domain, caller, input, "projectId");
  const path = normalizePath(input.path);
  const name = validateName(input.name);
  const ref = parseRevision(input.revision);
  noteFacts(caller.audit, { projectId });
  const missing = () =>
    notFound(`secret "${name}" not found at path "${path}" in project ${projectId}`, {
      resource: { type: "secret", id: `${path === "/" ? "" : path}/${name}` },
    });
  const lookup = { by: "path", region: region.name, projectId, path, name } as const;
  return serve(domain, caller, region, lookup, ref, input, missing);
}

/** Scopes and key ids change rarely: derived once per principal and per key ring. */
const scopeCache = new WeakMap<Principal, AccessParams["scopes"]>();
const keyIdCache = new WeakMap<KeyRing, string[]>();

/** Where a principal may read payloads, as the statement takes it (see authorize). */
function accessScopes(principal: Principal | undefined): AccessParams["scopes"] {
  // No principal: nothing is allowed, and authorizeSecret says UNAUTHENTICATED.
  if (principal === undefined) return { projects: [], prefixes: [] };
  let scopes = scopeCache.get(principal);
  if (scopes === undefined) {
    const found = scopesFor(principal, "access");
    scopes =
      found === "all"
        ? "all"
        : { projects: found.map((g) => g.projectId), prefixes: found.map((g) => g.pathPrefix) };
    scopeCache.set(principal, scopes);
  }
  return scopes;
}

function keyIdsOf(ring: KeyRing): string[] {
  let ids = keyIdCache.get(ring);
  if (ids === undefined) {
    ids = [...ring.keys.keys()];
    keyIdCache.set(ring, ids);
  }
  return ids;
}

const REVISION_RANGE = { lo: 1, hi: 2_147_483_647 };

/**
 * Serves a payload. The read, the single-access consumption (when the
 * version is single-access) and the audit event are one SQL statement, which
 * also serves the other calls queued with this one (group commit, see
 * db/access-queue.ts): no payload leaves before its event is committed, and
 * a caller who may not read it, or a version that cannot be served, changes
 * nothing. Only when the statement did not serve does this explain why, with
 * further queries and today's errors.
 *
 * Decryption follows the statement. A version whose master key this replica
 * lacks is neither consumed nor audited as served, so a replica with an old
 * key ring cannot spend a single-access version it cannot decrypt. A GCM or
 * CRC-32 failure after the statement means the stored row is corrupt (or was
 * moved from another secret): its OK event is taken back and a consumption
 * undone (undoServe), on this failure path only.
 */
async function serve(
  domain: DomainDeps,
  caller: Caller,
  region: RegionDb,
  lookup: SecretLookup,
  ref: RevisionSelector,
  { revision: asked, noConsume = false }: { revision: string } & AccessOptions,
  hidden: () => Error,
): Promise<AccessResult> {
  const ring = domain.keyRing();
  let row: AccessRow | undefined;
  try {
    row = await domain.accessQueues.access(region, {
      lookup,
      ...(ref.kind === "number" ? { lo: ref.revision, hi: ref.revision } : REVISION_RANGE),
      enabledOnly: ref.kind === "latest_enabled",
      scopes: accessScopes(caller.principal),
      noConsume,
      keyIds: keyIdsOf(ring),
      audit: auditParams(caller.audit),
    });
  } catch (err) {
    await noteAimedAt(caller, region.db, lookup, ref).catch(() => {});
    throw err;
  }
  if (row === undefined) throw hidden();
  const secret = { id: row.secretId, projectId: row.projectId, path: row.path, name: row.name };
  // Notes the secret in the audit record and raises today's NOT_FOUND or
  // PERMISSION_DENIED; the statement applied the same rule (authz.ts).
  authorizeSecret(caller, secret, "access", hidden);
  if (!row.allowed) throw new Error("the access statement and authorize() disagree on a grant");
  if (row.deleting) {
    throw failedPrecondition(
      `secret ${secret.id} is scheduled for deletion and cannot be accessed; restore it first (RestoreSecret)`,
    );
  }
  const v = row.version;
  const revision = ref.kind === "number" ? ref.revision : v?.revision;
  if (caller.audit && revision !== undefined) caller.audit.facts.revision = revision;
  if (v === undefined) {
    if (ref.kind === "number") return refuse(region.db, secret.id, ref.revision);
    throw versionNotFound(secret.id, asked);
  }
  const type = row.type as SecretKind;
  const { singleAccess } = v;
  if (!row.served) {
    // Servable, but under a master key this replica lacks: the same error as decrypting it.
    if (v.servable && v.keyId !== null && !ring.keys.has(v.keyId)) decrypt(ring, secret.id, v);
    return refuse(region.db, secret.id, v.revision);
  }
  markRecorded(caller.audit, { revision: v.revision });
  // Consumption changed the version: wake the watchers (the statement has committed).
  if (row.consumedAt !== null) domain.announce(region.name);
  if (singleAccess && noConsume) {
    return {
      secretId: secret.id,
      revision: v.revision,
      data: new Uint8Array(),
      dataCrc32: 0,
      type,
      singleAccess,
    };
  }
  let data: Uint8Array;
  try {
    data = decrypt(ring, secret.id, v);
  } catch (err) {
    await undoServe(domain, caller, region, secret.id, v, row.consumedAt).catch(() => {});
    throw err;
  }
  return {
    secretId: secret.id,
    revision: v.revision,
    data,
    dataCrc32: v.dataCrc32,
    type,
    singleAccess,
  };
}

/**
 * When the statement itself failed (the database refused or was away): notes
 * what the call aimed at in its audit record, as the chain's failure event
 * would have named it before the access became one statement. Best effort.
 */
async function noteAimedAt(
  caller: Caller,
  db: Db,
  lookup: SecretLookup,
  ref: RevisionSelector,
): Promise<void> {
  if (caller.audit === undefined) return;
  const secret =
    lookup.by === "id"
      ? await findSecret(db, lookup.region, lookup.secretId)
      : await findSecretByPath(db, lookup.region, lookup.projectId, lookup.path, lookup.name);
  if (secret === undefined) return;
  noteFacts(caller.audit, secretFacts(secret));
  const revision =
    ref.kind === "number" ? ref.revision : (await findVersion(db, secret.id, ref))?.revision;
  if (revision !== undefined) caller.audit.facts.revision = revision;
}

/**
 * After a served payload failed to decrypt (GCM or CRC-32: the stored row is
 * corrupt, or was moved from another secret or revision): takes back the OK
 * event, so the chain records the failure, and undoes a consumption, so a
 * repaired row can still be read once, as if this call had not happened.
 * The watchers may have seen the consumption; they then see the version
 * enabled again. Best effort: the call fails with the decryption error
 * whatever happens here.
 */
async function undoServe(
  domain: DomainDeps,
  caller: Caller,
  region: RegionDb,
  secretId: string,
  sealed: SealedRow,
  consumedAt: string | null,
): Promise<void> {
  await retractRecorded(region.db, caller.audit).catch(() => {});
  if (consumedAt !== null && (await unconsumeVersion(region.db, secretId, consumedAt, sealed))) {
    domain.announce(region.name);
  }
}

function decrypt(ring: KeyRing, secretId: string, sealed: SealedRow): Uint8Array {
  const { keyId, wrappedKey, ciphertext } = sealed;
  if (keyId === null || wrappedKey === null || ciphertext === null) {
    throw new Error(`servable version of secret ${secretId} has no ciphertext`);
  }
  const data = open({ keyId, wrappedKey, ciphertext }, versionAad(secretId, sealed.revision), ring);
  // Defence in depth: GCM already authenticates, this catches a bad write path.
  if (crc32(data) !== sealed.dataCrc32) {
    throw new Error(`payload of secret ${secretId} revision ${sealed.revision} fails its CRC-32`);
  }
  return data;
}

/** Says why a version cannot be served: it is missing, consumed, disabled, expired or deleted. */
async function refuse(ex: Executor, secretId: string, revision: number): Promise<never> {
  const v = await findVersion(ex, secretId, { kind: "number", revision });
  if (v === undefined) throw versionNotFound(secretId, String(revision));
  const what = `version ${revision} of secret ${secretId}`;
  if (v.consumedAt !== null) {
    throw failedPrecondition(
      `${what} was already accessed: it is single-access (expires once accessed)`,
    );
  }
  // Status is effective (db/versions.ts): an expired version already reads
  // disabled or deleted, so expiry is told first, as the reason.
  if (
    v.expiresAt !== null &&
    v.expiresAt.getTime() <= Date.now() &&
    (v.status === "disabled" || v.status === "deleted")
  ) {
    throw failedPrecondition(
      v.status === "deleted"
        ? `${what} expired at ${v.expiresAt.toISOString()} (ephemeral policy, action delete) and is destroyed: its payload is gone for good`
        : `${what} expired at ${v.expiresAt.toISOString()} (ephemeral policy); enable it again or create a new version`,
    );
  }
  switch (v.status) {
    case "disabled":
      throw failedPrecondition(`${what} is disabled; enable it to access it`);
    case "scheduled_for_deletion":
      throw failedPrecondition(`${what} is scheduled for deletion; restore it to access it`);
    case "deleted":
      throw failedPrecondition(`${what} is destroyed: its payload is gone for good`);
    default:
      throw failedPrecondition(
        `${what} expired at ${v.expiresAt?.toISOString() ?? "an earlier time"} (ephemeral policy); enable it again or create a new version`,
      );
  }
}
