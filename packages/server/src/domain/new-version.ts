import { seal, versionAad } from "../crypto/envelope.ts";
import type { Db } from "../db/client.ts";
import type { SecretRow } from "../db/schema.ts";
import { lockSecret } from "../db/secrets.ts";
import { inTransactionThenAnnounce } from "../db/tx.ts";
import {
  type InsertedRow,
  insertedVersion,
  type NewVersion,
  type VersionMeta,
} from "../db/versions.ts";
import { type BatchedVersion, insertVersionsWithEvents } from "../db/versions-batch.ts";
import { auditParams, markRecorded } from "./audit.ts";
import type { Caller } from "./caller.ts";
import type { DomainDeps } from "./context.ts";
import type { CreateVersionInput } from "./create-version.ts";
import { propertiesFromPolicy } from "./ephemeral-policy.ts";
import { checkVersionQuota } from "./limits.ts";
import { type SecretKind, validatePayload } from "./payload-types.ts";
import { allowChange } from "./secret-lock.ts";

/**
 * What writing one new version takes once its request is validated
 * (create-version.ts): the checks against its locked secret, and its
 * transaction when it is written alone (create-batch.ts writes several).
 */

/** A create whose input is validated, waiting for its secret's lock. */
export interface VersionRequest {
  caller: Caller;
  region: string;
  secretId: string;
  input: CreateVersionInput;
  description: string;
  crc: number;
}

export type CreatedVersion = VersionMeta & { latest: boolean };

/**
 * One create in its own transaction, in four round trips: BEGIN, the lock
 * (which must come first, in a statement of its own, so that the next
 * statement's snapshot sees every version committed before the lock was
 * granted; the locked row also carries the count the version quota checks),
 * one statement for `disable_previous`, the insert, the secret's bump and the
 * audit event (insertVersionsWithEvents, the batch's statement with one
 * version), and COMMIT. `remember` is given the secret's row as the create
 * left it, once committed.
 */
export async function createAlone(
  domain: DomainDeps,
  region: { name: string; db: Db },
  request: VersionRequest,
  remember: (row: SecretRow) => void = () => {},
): Promise<CreatedVersion> {
  let after: SecretRow | undefined;
  const created = await inTransactionThenAnnounce(domain, region, async (tx) => {
    const write = versionToWrite(
      domain,
      request,
      await lockSecret(tx, region.name, request.secretId),
    );
    const [row] = await insertVersionsWithEvents(tx, [write]);
    if (row === undefined) throw new Error("the create-version statement returned no row");
    markRecorded(request.caller.audit, { revision: write.version.revision });
    after = rowAfter(write, row);
    return insertedVersion(row);
  });
  if (after !== undefined) remember(after);
  return created;
}

/**
 * Checks a create against its secret's row (undefined when the secret is not
 * in the region) and seals its payload: the version to write, or the error
 * the caller is told. The row is the locked one, or one this process wrote
 * (create-batch.ts), which the write then checks is unchanged.
 */
export function versionToWrite(
  domain: DomainDeps,
  request: VersionRequest,
  row: SecretRow | undefined,
): BatchedVersion {
  const { caller, secretId: id, input } = request;
  const secret = allowChange(caller, id, input.etag, row);
  validatePayload(secret.type as SecretKind, input.data);
  checkVersionQuota(domain, secret);
  const revision = secret.lastRevision + 1;
  const policy = propertiesFromPolicy(secret, input.enabled);
  const version: NewVersion = {
    secretId: id,
    revision,
    status: input.enabled ? "enabled" : "disabled",
    description: request.description,
    dataCrc32: request.crc,
    ...seal(input.data, versionAad(id, revision), domain.keyRing()),
    // The same expiry propertiesFromPolicy gives: now + time_to_live, on the database's clock.
    ttlMs: policy.expiresAt === null ? null : secret.ttlMs,
    expiresOnceAccessed: policy.expiresOnceAccessed,
    ephemeralAction: policy.ephemeralAction,
  };
  return {
    version,
    disablePrevious: input.disablePrevious,
    audit: auditParams(caller.audit),
    decidedOn: secret,
  };
}

/** The secret's row once `write` is committed, as its statement returned it (`row`). */
export function rowAfter(write: BatchedVersion, row: InsertedRow): SecretRow {
  return {
    ...write.decidedOn,
    lastRevision: row.revision,
    generation: Number(row.secret_generation),
    keptVersions: row.secret_kept_versions,
  };
}
