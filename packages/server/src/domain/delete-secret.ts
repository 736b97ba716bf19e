import { eq, sql } from "drizzle-orm";
import { pgErrorCode } from "../db/errors.ts";
import { secrets } from "../db/schema.ts";
import { getSecretView, lockSecret, type SecretView, updateSecret } from "../db/secrets.ts";
import { inTransactionThenAnnounce } from "../db/tx.ts";
import { resolveAddress } from "./addressing.ts";
import { recordInTransaction } from "./audit.ts";
import { authorizedSecret } from "./authz.ts";
import type { Caller } from "./caller.ts";
import type { DomainDeps } from "./context.ts";
import { alreadyExists, failedPrecondition } from "./errors.ts";
import { checkSecretQuota } from "./limits.ts";
import { checkRestoreWindow } from "./restore-window.ts";
import { lockSecretForChange } from "./secret-lock.ts";

/**
 * Schedules a secret for deletion: it is hidden from lists, refuses access
 * and changes, and can be restored until the deletion window ends, when the
 * sweeper destroys it. An ephemeral secret is destroyed at once (undefined is
 * returned). A protected secret refuses.
 */
export async function deleteSecret(
  domain: DomainDeps,
  caller: Caller,
  input: { region: string; secretId: string; etag: string },
): Promise<SecretView | undefined> {
  const { region, id } = resolveAddress(domain, caller, input, "secretId");
  return inTransactionThenAnnounce(domain, region, async (tx) => {
    const secret = await lockSecretForChange(tx, caller, region.name, id, input.etag);
    if (secret.protected) {
      throw failedPrecondition("secret is protected: unprotect it first to delete it", {
        precondition: "protected_resource",
        resource: { type: "secret", id },
      });
    }
    await recordInTransaction(tx, caller.audit, {});
    if (secret.ephemeralAction !== null) {
      await tx.delete(secrets).where(eq(secrets.id, id));
      return undefined;
    }
    await updateSecret(tx, id, { deletionRequestedAt: sql`now()` });
    return getSecretView(tx, id);
  });
}

/** Cancels a scheduled deletion, if the secret's name is still free. */
export async function restoreSecret(
  domain: DomainDeps,
  caller: Caller,
  input: { region: string; secretId: string },
): Promise<SecretView> {
  const { region, id } = resolveAddress(domain, caller, input, "secretId");
  try {
    return await inTransactionThenAnnounce(domain, region, async (tx) => {
      const secret = authorizedSecret(caller, id, "write", await lockSecret(tx, region.name, id));
      if (secret.deletionRequestedAt === null) {
        throw failedPrecondition(`secret ${id} is not scheduled for deletion`);
      }
      checkRestoreWindow(secret.deletionRequestedAt, domain.deletionWindowMs, `secret ${id}`);
      await checkSecretQuota(tx, domain, region.name, secret.projectId);
      await updateSecret(tx, id, { deletionRequestedAt: null });
      await recordInTransaction(tx, caller.audit, {});
      return getSecretView(tx, id);
    });
  } catch (err) {
    if (pgErrorCode(err) === "23505") {
      throw alreadyExists(
        `cannot restore secret ${id}: another secret now has its name at its path; rename or delete that one first`,
      );
    }
    throw err;
  }
}
