import { crc32 } from "node:zlib";
import { open, versionAad } from "../crypto/envelope.ts";
import type { Db, Executor } from "../db/client.ts";
import { findSecret, findSecretByPath, type SecretView, updateSecret } from "../db/secrets.ts";
import { inTransaction } from "../db/tx.ts";
import {
  consumeVersion,
  findServable,
  findVersion,
  type RevisionRef,
  type SealedRow,
} from "../db/versions.ts";
import { recordInTransaction } from "./audit.ts";
import type { Caller, Domain } from "./context.ts";
import { failedPrecondition, notFound } from "./errors.ts";
import { versionNotFound } from "./read-versions.ts";
import {
  authorizeSecret,
  noteProject,
  regionFor,
  type SecretKind,
  secretNotFound,
} from "./shared.ts";
import {
  normalizePath,
  parseRevision,
  type RevisionSelector,
  validateName,
  validateUuid,
} from "./validation.ts";

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
  domain: Domain,
  caller: Caller,
  input: { region: string; secretId: string; revision: string } & AccessOptions,
): Promise<AccessResult> {
  const region = regionFor(domain, caller, input.region);
  const id = validateUuid(input.secretId, "secret_id");
  const ref = parseRevision(input.revision);
  const secret = await findSecret(region.db, region.name, id);
  if (secret === undefined) throw secretNotFound(id);
  return serve(domain, caller, region, secret, ref, input);
}

/** Like accessVersion, addressing the secret by project, path and name. */
export async function accessVersionByPath(
  domain: Domain,
  caller: Caller,
  input: {
    region: string;
    projectId: string;
    path: string;
    name: string;
    revision: string;
  } & AccessOptions,
): Promise<AccessResult> {
  const region = regionFor(domain, caller, input.region);
  const projectId = validateUuid(input.projectId, "project_id");
  const path = normalizePath(input.path);
  const name = validateName(input.name);
  const ref = parseRevision(input.revision);
  noteProject(caller, projectId);
  const missing = () =>
    notFound(`secret "${name}" not found at path "${path}" in project ${projectId}`);
  const secret = await findSecretByPath(region.db, region.name, projectId, path, name);
  if (secret === undefined) throw missing();
  return serve(domain, caller, region, secret, ref, input, missing);
}

/**
 * Serves a payload. The read, the single-access consumption (when the
 * version is single-access) and the audit event share one transaction: no
 * payload leaves without its event, and a payload that fails to decrypt is
 * neither consumed nor reported as served.
 */
async function serve(
  domain: Domain,
  caller: Caller,
  region: { name: string; db: Db },
  secret: SecretView,
  ref: RevisionSelector,
  { revision: asked, noConsume = false }: { revision: string } & AccessOptions,
  hidden: () => Error = () => secretNotFound(secret.id),
): Promise<AccessResult> {
  authorizeSecret(caller, secret, "access", hidden);
  if (secret.deletionRequestedAt !== null) {
    throw failedPrecondition(
      `secret ${secret.id} is scheduled for deletion and cannot be accessed; restore it first (RestoreSecret)`,
    );
  }
  const revision = await resolveRevision(region.db, secret.id, ref, asked);
  if (caller.audit) caller.audit.facts.revision = revision;
  const served = await inTransaction(region.db, async (tx) => {
    const row = await findServable(tx, secret.id, revision);
    if (row === undefined) return refuse(tx, secret.id, revision);
    let sealed: SealedRow = row;
    const singleAccess = row.expiresOnceAccessed === true;
    if (singleAccess && noConsume) {
      await recordInTransaction(tx, caller.audit, { revision });
      const type = secret.type as SecretKind;
      return {
        secretId: secret.id,
        revision,
        data: new Uint8Array(),
        dataCrc32: 0,
        type,
        singleAccess,
      };
    }
    if (singleAccess) {
      const consumed = await consumeVersion(tx, secret.id, revision);
      if (consumed === undefined) return refuse(tx, secret.id, revision);
      await updateSecret(tx, secret.id, {});
      sealed = consumed;
    }
    const data = decrypt(domain, secret.id, sealed);
    await recordInTransaction(tx, caller.audit, { revision });
    return {
      secretId: secret.id,
      revision,
      data,
      dataCrc32: sealed.dataCrc32,
      type: secret.type as SecretKind,
      singleAccess,
    };
  });
  // Consumption changed the version: wake the watchers (after the commit).
  if (served.singleAccess && !noConsume) domain.announce(region.name);
  return served;
}

async function resolveRevision(
  db: Db,
  secretId: string,
  ref: RevisionRef,
  asked: string,
): Promise<number> {
  if (ref.kind === "number") return ref.revision;
  const version = await findVersion(db, secretId, ref);
  if (version === undefined) throw versionNotFound(secretId, asked);
  return version.revision;
}

function decrypt(domain: Domain, secretId: string, sealed: SealedRow): Uint8Array {
  const { keyId, wrappedKey, ciphertext } = sealed;
  if (keyId === null || wrappedKey === null || ciphertext === null) {
    throw new Error(`servable version of secret ${secretId} has no ciphertext`);
  }
  const data = open(
    { keyId, wrappedKey, ciphertext },
    versionAad(secretId, sealed.revision),
    domain.keyRing(),
  );
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
  switch (v.status) {
    case "disabled":
      throw failedPrecondition(`${what} is disabled; enable it to access it`);
    case "scheduled_for_deletion":
      throw failedPrecondition(`${what} is scheduled for deletion; restore it to access it`);
    case "deleted":
      throw failedPrecondition(`${what} is deleted: its payload is destroyed`);
    default:
      throw failedPrecondition(
        `${what} expired at ${v.expiresAt?.toISOString() ?? "an earlier time"} (ephemeral policy); enable it again or create a new version`,
      );
  }
}
