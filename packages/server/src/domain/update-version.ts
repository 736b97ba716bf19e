import { updateSecret } from "../db/secrets.ts";
import { inTransactionThenAnnounce } from "../db/tx.ts";
import { findVersion, updateVersion as writeVersion } from "../db/versions.ts";
import { resolveAddress } from "./addressing.ts";
import { recordInTransaction } from "./audit.ts";
import type { Caller } from "./caller.ts";
import type { DomainDeps } from "./context.ts";
import type { EphemeralAction } from "./ephemeral-policy.ts";
import { failedPrecondition, invalid } from "./errors.ts";
import type { VersionView } from "./read-versions.ts";
import { versionNotFound } from "./read-versions.ts";
import { lockSecretForChange } from "./secret-lock.ts";
import { parseRevision, validateDescription, validateTimeToLive } from "./validation.ts";

export interface UpdateVersionInput {
  region: string;
  secretId: string;
  revision: string;
  description?: string;
  ephemeralProperties?: {
    expiresAt?: Date;
    expiresOnceAccessed: boolean;
    action?: EphemeralAction;
  };
  etag: string;
}

/**
 * Changes a version's description or ephemeral properties. Properties exist
 * only on versions of a secret with an ephemeral policy, and like the policy
 * they can be changed but not removed. They can only be tightened (see
 * refuseWeakening); an unspecified action keeps the version's action.
 */
export async function updateVersion(
  domain: DomainDeps,
  caller: Caller,
  input: UpdateVersionInput,
): Promise<VersionView> {
  const { region, id } = resolveAddress(domain, caller, input, "secretId");
  const ref = parseRevision(input.revision);
  const description =
    input.description === undefined ? undefined : validateDescription(input.description);
  const props = input.ephemeralProperties;
  if (props !== undefined) {
    if (props.expiresAt === undefined && !props.expiresOnceAccessed) {
      throw invalid(
        "ephemeral_properties",
        "must set expires_at or expires_once_accessed (properties cannot be removed)",
      );
    }
    if (props.expiresAt !== undefined) {
      validateTimeToLive(props.expiresAt.getTime() - Date.now(), "ephemeral_properties.expires_at");
    }
  }
  return inTransactionThenAnnounce(domain, region, async (tx) => {
    const secret = await lockSecretForChange(tx, caller, region.name, id, input.etag);
    const version = await findVersion(tx, id, ref);
    if (version === undefined) throw versionNotFound(id, input.revision);
    if (props !== undefined && secret.ephemeralAction === null) {
      throw failedPrecondition(
        `secret ${id} has no ephemeral policy, so its versions cannot have ephemeral properties`,
      );
    }
    // The secret's lock serializes this with every other change of its
    // properties; only consumption and the sweeper change a version without
    // it, and they only make it less servable.
    const action =
      props?.action ?? (version.ephemeralAction as EphemeralAction | null) ?? "disable";
    if (props !== undefined) refuseWeakening(version, { ...props, action });
    await writeVersion(tx, id, version.revision, {
      ...(description !== undefined && { description }),
      ...(props !== undefined && {
        expiresAt: props.expiresAt ?? null,
        expiresOnceAccessed: props.expiresOnceAccessed,
        ephemeralAction: action,
      }),
    });
    await updateSecret(tx, id, {});
    await recordInTransaction(tx, caller.audit, { revision: version.revision });
    const after = await findVersion(tx, id, { kind: "number", revision: version.revision });
    if (after === undefined) throw new Error("version vanished inside its transaction");
    return after;
  });
}

/**
 * Refuses an update that would make a version more servable than it is
 * (README, "Ephemeral secrets"): a property may only be tightened.
 * - `expires_once_accessed` cannot go from true to false;
 * - `expires_at`, once set, cannot be removed or moved later (earlier is fine;
 *   setting it where there is none adds a limit);
 * - `action` cannot go from `delete` to `disable` (the payload would outlive
 *   its expiry).
 */
function refuseWeakening(
  v: VersionView,
  next: { expiresAt?: Date; expiresOnceAccessed: boolean; action: EphemeralAction },
): void {
  const what = `version ${v.revision}`;
  if (v.expiresOnceAccessed === true && !next.expiresOnceAccessed) {
    throw failedPrecondition(
      `ephemeral_properties.expires_once_accessed: ${what} is single-access; that cannot be turned off (properties can be tightened, never weakened)`,
    );
  }
  if (v.expiresAt !== null) {
    if (next.expiresAt === undefined) {
      throw failedPrecondition(
        `ephemeral_properties.expires_at: ${what} expires at ${v.expiresAt.toISOString()}; the expiry cannot be removed (properties can be tightened, never weakened)`,
      );
    }
    if (next.expiresAt.getTime() > v.expiresAt.getTime()) {
      throw failedPrecondition(
        `ephemeral_properties.expires_at: ${what} expires at ${v.expiresAt.toISOString()}; it can be moved earlier, not later (properties can be tightened, never weakened)`,
      );
    }
  }
  if (v.ephemeralAction === "delete" && next.action !== "delete") {
    throw failedPrecondition(
      `ephemeral_properties.action: ${what} is destroyed when it expires (delete); that cannot become disable (properties can be tightened, never weakened)`,
    );
  }
}
