import { pgErrorCode } from "../db/errors.ts";
import {
  findSecret,
  getSecretView,
  type SecretView,
  updateSecret as writeSecret,
} from "../db/secrets.ts";
import { liveGrantsOnProject } from "../db/tokens.ts";
import { inTransactionThenAnnounce } from "../db/tx.ts";
import { resolveAddress } from "./addressing.ts";
import { recordInTransaction } from "./audit.ts";
import { authorizePlacement, moveWidensReaders, requirePrincipal } from "./authz.ts";
import type { Caller, Grant } from "./caller.ts";
import type { DomainDeps } from "./context.ts";
import { type EphemeralPolicyInput, policyColumns } from "./ephemeral-policy.ts";
import { alreadyExists, failedPrecondition, permissionDenied } from "./errors.ts";
import { lockSecretForChange } from "./secret-lock.ts";
import { normalizePath, normalizeTags, validateDescription, validateName } from "./validation.ts";

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
  domain: DomainDeps,
  caller: Caller,
  input: UpdateSecretInput,
): Promise<SecretView> {
  const { region, id } = resolveAddress(domain, caller, input, "secretId");
  const set = {
    ...(input.name !== undefined && { name: validateName(input.name) }),
    ...(input.path !== undefined && { path: normalizePath(input.path) }),
    ...(input.description !== undefined && {
      description: validateDescription(input.description),
    }),
    ...(input.tags !== undefined && { tags: normalizeTags(input.tags) }),
    ...(input.ephemeralPolicy !== undefined && policyColumns(input.ephemeralPolicy)),
  };
  // A move is checked against every live token of the secret's project
  // (moveWidensReaders). Tokens live in the home region's database, read
  // here, before the change's transaction: on an embedded database that is
  // the same single connection. A token created while the move commits is
  // an admin's act, and admins may read payloads anyway.
  let tokens: Grant[][] = [];
  if (set.path !== undefined) {
    const found = await findSecret(region.db, region.name, id);
    if (found !== undefined) {
      tokens = (await liveGrantsOnProject(domain.regions.resolve("").db, found.projectId)).map(
        (grants) => grants as Grant[],
      );
    }
  }
  try {
    return await inTransactionThenAnnounce(domain, region, async (tx) => {
      const secret = await lockSecretForChange(tx, caller, region.name, id, input.etag);
      // Moving a secret needs write access where it goes, too, and must not
      // let any token read its payload that cannot read it where it is.
      if (set.path !== undefined) authorizePlacement(caller, secret.projectId, set.path);
      if (set.path !== undefined && set.path !== secret.path) {
        const principal = requirePrincipal(caller.principal);
        if (moveWidensReaders(principal, tokens, secret.projectId, secret.path, set.path)) {
          throw permissionDenied(
            `moving secret ${id} from ${secret.path} to ${set.path} would let tokens that cannot read its payload at ${secret.path} read it at ${set.path}; only a token that may read the payload at ${secret.path} (secret_access or full_access there), or an admin, can make this move`,
          );
        }
      }
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
  domain: DomainDeps,
  caller: Caller,
  input: { region: string; secretId: string; etag: string; protected: boolean },
): Promise<SecretView> {
  const { region, id } = resolveAddress(domain, caller, input, "secretId");
  return inTransactionThenAnnounce(domain, region, async (tx) => {
    const secret = await lockSecretForChange(tx, caller, region.name, id, input.etag);
    if (secret.protected !== input.protected) {
      await writeSecret(tx, id, { protected: input.protected });
    }
    await recordInTransaction(tx, caller.audit, {});
    return getSecretView(tx, id);
  });
}
