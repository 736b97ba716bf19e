import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import {
  generateToken,
  isWellFormedToken,
  tokenFromValue,
  weakTokenReason,
} from "../../crypto/tokens.ts";
import type { Db } from "../../db/client.ts";
import { anyToken, insertToken } from "../../db/tokens.ts";

/**
 * An arbitrary constant, distinct from the migration lock: the advisory lock
 * that makes replicas starting together on an empty database create one
 * bootstrap token between them.
 */
const BOOTSTRAP_LOCK = 0x636f66666201;

/** The name the bootstrap token is listed under. */
export const BOOTSTRAP_TOKEN_NAME = "bootstrap admin";

/**
 * Makes a fresh installation usable and nothing more: when the home
 * database holds no token at all (not even a revoked one), creates a global
 * admin token named "bootstrap admin", from `fromEnv` (COFFER_BOOTSTRAP_TOKEN)
 * when given, else random. Returns the value only when it created the
 * token, so that the caller shows it once; undefined on every later start.
 *
 * The emptiness check and the insert run in one transaction holding an
 * advisory lock, so of several replicas starting together exactly one
 * creates the token.
 */
export async function bootstrapAdminToken(
  db: Db,
  options: { fromEnv?: string },
): Promise<string | undefined> {
  if (options.fromEnv !== undefined && !isWellFormedToken(options.fromEnv)) {
    // Never repeat the value: it may be a real secret with a typo.
    throw new Error(
      "COFFER_BOOTSTRAP_TOKEN: must be a Coffer token (coffer_ followed by 49 letters and digits ending in a checksum)",
    );
  }
  const weak = options.fromEnv === undefined ? undefined : weakTokenReason(options.fromEnv);
  if (weak !== undefined) {
    // Checked by the configuration already; kept here so that no other
    // caller can seed a guessable global admin token.
    throw new Error(`COFFER_BOOTSTRAP_TOKEN: is not random enough to be an admin token: ${weak}`);
  }
  const token = options.fromEnv === undefined ? generateToken() : tokenFromValue(options.fromEnv);
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${BOOTSTRAP_LOCK})`);
    if (await anyToken(tx)) return undefined;
    await insertToken(tx, {
      id: randomUUID(),
      name: BOOTSTRAP_TOKEN_NAME,
      prefix: token.prefix,
      hash: token.hash,
      grants: [{ projectId: "", role: "admin", pathPrefix: "/" }],
      expiresAt: null,
      // The root of every token tree: no creator, so nothing caps or revokes it but itself.
      createdBy: null,
    });
    return token.value;
  });
}
