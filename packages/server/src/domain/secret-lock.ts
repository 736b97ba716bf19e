import type { Tx } from "../db/client.ts";
import type { SecretRow } from "../db/schema.ts";
import { lockSecret } from "../db/secrets.ts";
import { authorizedSecret, type Permission } from "./authz.ts";
import type { Caller } from "./caller.ts";
import { failedPrecondition } from "./errors.ts";
import { checkEtag } from "./etag.ts";

/**
 * Locks a secret for a change: it must exist in the region, the caller must
 * be allowed to change it, it must not be scheduled for deletion (locked),
 * and the caller's etag, when given, must be current.
 */
export async function lockSecretForChange(
  tx: Tx,
  caller: Caller,
  region: string,
  secretId: string,
  etag: string,
  permission: Permission = "write",
): Promise<SecretRow> {
  return allowChange(caller, secretId, etag, await lockSecret(tx, region, secretId), permission);
}

/**
 * lockSecretForChange's checks, on a secret row already locked (undefined
 * when it is not in the region): returns the row, or throws what the caller
 * is told.
 */
export function allowChange(
  caller: Caller,
  secretId: string,
  etag: string,
  locked: SecretRow | undefined,
  permission: Permission = "write",
): SecretRow {
  const secret = authorizedSecret(caller, secretId, permission, locked);
  checkEtag(secret, etag);
  if (secret.deletionRequestedAt !== null) {
    throw failedPrecondition(
      `secret ${secretId} is scheduled for deletion and cannot change; restore it first (RestoreSecret)`,
    );
  }
  return secret;
}
