import { pgErrorCode } from "../db/errors.ts";
import { getSecretView, type SecretView, updateSecret as writeSecret } from "../db/secrets.ts";
import { recordInTransaction } from "./audit.ts";
import type { Caller, Domain } from "./context.ts";
import { alreadyExists, failedPrecondition } from "./errors.ts";
import {
  authorizePlacement,
  type EphemeralPolicyInput,
  inChange,
  lockForChange,
  policyColumns,
  regionFor,
} from "./shared.ts";
import {
  normalizePath,
  normalizeTags,
  validateDescription,
  validateName,
  validateUuid,
} from "./validation.ts";

export interface UpdateSecretInput {
  region: string;
  secretId: string;
  name?: string;
  path?: string;
  description?: string;
  tags?: string[];
  ephemeralPolicy?: EphemeralPolicyInput;
  etag: string;
}

/**
 * Changes a secret's metadata. The ephemeral policy can be changed only on a
 * secret created with one, and never removed; existing versions keep the
 * properties they took when created or enabled.
 */
export async function updateSecret(
  domain: Domain,
  caller: Caller,
  input: UpdateSecretInput,
): Promise<SecretView> {
  const region = regionFor(domain, caller, input.region);
  const id = validateUuid(input.secretId, "secret_id");
  const set = {
    ...(input.name !== undefined && { name: validateName(input.name) }),
    ...(input.path !== undefined && { path: normalizePath(input.path) }),
    ...(input.description !== undefined && {
      description: validateDescription(input.description),
    }),
    ...(input.tags !== undefined && { tags: normalizeTags(input.tags) }),
    ...(input.ephemeralPolicy !== undefined && policyColumns(input.ephemeralPolicy)),
  };
  try {
    return await inChange(domain, region, async (tx) => {
      const secret = await lockForChange(tx, caller, region.name, id, input.etag);
      // Moving a secret needs write access where it goes, too.
      if (set.path !== undefined) authorizePlacement(caller, secret.projectId, set.path);
      if (input.ephemeralPolicy !== undefined && secret.ephemeralAction === null) {
        throw failedPrecondition(
          `secret ${id} was created without an ephemeral policy; a policy can only be set when a secret is created`,
        );
      }
      await writeSecret(tx, id, set);
      await recordInTransaction(tx, caller.audit, {});
      return getSecretView(tx, id);
    });
  } catch (err) {
    if (pgErrorCode(err) === "23505") {
      throw alreadyExists(
        "another secret already has this name at this path in the project and region",
      );
    }
    throw err;
  }
}

/** Sets or clears a secret's protection against deletion. */
export async function setProtection(
  domain: Domain,
  caller: Caller,
  input: { region: string; secretId: string; etag: string; protected: boolean },
): Promise<SecretView> {
  const region = regionFor(domain, caller, input.region);
  const id = validateUuid(input.secretId, "secret_id");
  return inChange(domain, region, async (tx) => {
    const secret = await lockForChange(tx, caller, region.name, id, input.etag);
    if (secret.protected !== input.protected) {
      await writeSecret(tx, id, { protected: input.protected });
    }
    await recordInTransaction(tx, caller.audit, {});
    return getSecretView(tx, id);
  });
}
