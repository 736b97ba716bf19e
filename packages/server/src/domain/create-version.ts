import { seal, versionAad } from "../crypto/envelope.ts";
import { inTransactionThenAnnounce } from "../db/tx.ts";
import { insertVersionWithEvent, type VersionMeta } from "../db/versions.ts";
import { resolveAddress } from "./addressing.ts";
import { auditParams, markRecorded } from "./audit.ts";
import type { Caller } from "./caller.ts";
import type { DomainDeps } from "./context.ts";
import { propertiesFromPolicy } from "./ephemeral-policy.ts";
import { checkVersionQuota } from "./limits.ts";
import { type SecretKind, validatePayload } from "./payload-types.ts";
import { lockSecretForChange } from "./secret-lock.ts";
import { checkCrc32, validateDescription } from "./validation.ts";

export interface CreateVersionInput {
  region: string;
  secretId: string;
  data: Uint8Array;
  dataCrc32?: number;
  description: string;
  enabled: boolean;
  disablePrevious: boolean;
  etag: string;
}

/**
 * Adds a version. Its revision is the secret's highest ever plus one (the
 * secret row is locked, so two creates never take the same number, and a
 * destroyed revision is never given out again).
 *
 * Four round trips: BEGIN, the lock (which must come first, in a statement
 * of its own, so that the next statement's snapshot sees every version
 * committed before the lock was granted; the locked row also carries the
 * count the version quota checks), one statement for `disable_previous`, the
 * insert, the secret's bump and the audit event (insertVersionWithEvent),
 * and COMMIT.
 */
export async function createVersion(
  domain: DomainDeps,
  caller: Caller,
  input: CreateVersionInput,
): Promise<VersionMeta & { latest: boolean }> {
  const { region, id } = resolveAddress(domain, caller, input, "secretId");
  const description = validateDescription(input.description);
  const crc = checkCrc32(input.data, input.dataCrc32);
  const created = await inTransactionThenAnnounce(domain, region, async (tx) => {
    const secret = await lockSecretForChange(tx, caller, region.name, id, input.etag);
    validatePayload(secret.type as SecretKind, input.data);
    checkVersionQuota(domain, secret);
    const revision = secret.lastRevision + 1;
    const policy = propertiesFromPolicy(secret, input.enabled);
    const row = await insertVersionWithEvent(
      tx,
      {
        secretId: id,
        revision,
        status: input.enabled ? "enabled" : "disabled",
        description,
        dataCrc32: crc,
        ...seal(input.data, versionAad(id, revision), domain.keyRing()),
        // The same expiry propertiesFromPolicy gives: now + time_to_live, on the database's clock.
        ttlMs: policy.expiresAt === null ? null : secret.ttlMs,
        expiresOnceAccessed: policy.expiresOnceAccessed,
        ephemeralAction: policy.ephemeralAction,
      },
      input.disablePrevious,
      auditParams(caller.audit),
    );
    markRecorded(caller.audit, { revision });
    return row;
  });
  return created;
}
