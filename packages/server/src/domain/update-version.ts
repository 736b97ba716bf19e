import { updateSecret } from "../db/secrets.ts";
import { findVersion, updateVersion as writeVersion } from "../db/versions.ts";
import { recordInTransaction } from "./audit.ts";
import type { Caller, Domain } from "./context.ts";
import { failedPrecondition, invalid } from "./errors.ts";
import type { VersionView } from "./read-versions.ts";
import { versionNotFound } from "./read-versions.ts";
import { type EphemeralAction, inChange, lockForChange, regionFor } from "./shared.ts";
import {
  parseRevision,
  validateDescription,
  validateTimeToLive,
  validateUuid,
} from "./validation.ts";

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
 * they can be changed but not removed.
 */
export async function updateVersion(
  domain: Domain,
  caller: Caller,
  input: UpdateVersionInput,
): Promise<VersionView> {
  const region = regionFor(domain, caller, input.region);
  const id = validateUuid(input.secretId, "secret_id");
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
  return inChange(domain, region, async (tx) => {
    const secret = await lockForChange(tx, caller, region.name, id, input.etag);
    const version = await findVersion(tx, id, ref);
    if (version === undefined) throw versionNotFound(id, input.revision);
    if (props !== undefined && secret.ephemeralAction === null) {
      throw failedPrecondition(
        `secret ${id} has no ephemeral policy, so its versions cannot have ephemeral properties`,
      );
    }
    await writeVersion(tx, id, version.revision, {
      ...(description !== undefined && { description }),
      ...(props !== undefined && {
        expiresAt: props.expiresAt ?? null,
        expiresOnceAccessed: props.expiresOnceAccessed,
        ephemeralAction: props.action ?? "disable",
      }),
    });
    await updateSecret(tx, id, {});
    await recordInTransaction(tx, caller.audit, { revision: version.revision });
    const after = await findVersion(tx, id, { kind: "number", revision: version.revision });
    if (after === undefined) throw new Error("version vanished inside its transaction");
    return after;
  });
}
