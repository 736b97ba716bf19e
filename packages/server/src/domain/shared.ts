import { type SQL, sql } from "drizzle-orm";
import type { Tx } from "../db/client.ts";
import type { SecretRow } from "../db/schema.ts";
import { lockSecret } from "../db/secrets.ts";
import { aborted, failedPrecondition, invalid, notFound } from "./errors.ts";
import { validateTimeToLive } from "./validation.ts";

export type { SecretKind } from "./payload-types.ts";

export type EphemeralAction = "disable" | "delete";

/** A secret's ephemeral policy as a request states it. */
export interface EphemeralPolicyInput {
  ttlMs?: number;
  expiresOnceAccessed: boolean;
  action?: EphemeralAction;
}

/** The etag clients see: the secret's generation, which every mutation bumps. */
export function etagOf(secret: Pick<SecretRow, "generation">): string {
  return `"${secret.generation}"`;
}

export function secretNotFound(id: string): Error {
  return notFound(`secret ${id} not found`);
}

/**
 * Locks a secret for a change: it must exist in the region, must not be
 * scheduled for deletion (locked), and the caller's etag, when given, must be
 * current.
 */
export async function lockForChange(
  tx: Tx,
  region: string,
  secretId: string,
  etag: string,
): Promise<SecretRow> {
  const secret = await lockSecret(tx, region, secretId);
  if (secret === undefined) throw secretNotFound(secretId);
  checkEtag(secret, etag);
  if (secret.deletionRequestedAt !== null) {
    throw failedPrecondition(
      `secret ${secretId} is scheduled for deletion and cannot change; restore it first (RestoreSecret)`,
    );
  }
  return secret;
}

export function checkEtag(secret: Pick<SecretRow, "generation" | "id">, etag: string): void {
  if (etag !== "" && etag !== etagOf(secret)) {
    throw aborted(
      `etag ${etag} is stale: secret ${secret.id} changed since it was read (now ${etagOf(secret)}); read it again and retry`,
    );
  }
}

/** Validates a policy and returns its columns. A policy must limit something. */
export function policyColumns(policy: EphemeralPolicyInput): {
  ttlMs: number | null;
  expiresOnceAccessed: boolean;
  ephemeralAction: EphemeralAction;
} {
  const ttlMs =
    policy.ttlMs === undefined
      ? null
      : validateTimeToLive(policy.ttlMs, "ephemeral_policy.time_to_live");
  if (ttlMs === null && !policy.expiresOnceAccessed) {
    throw invalid(
      "ephemeral_policy",
      "must set time_to_live or expires_once_accessed (a policy cannot be empty, and cannot be removed)",
    );
  }
  return {
    ttlMs,
    expiresOnceAccessed: policy.expiresOnceAccessed,
    ephemeralAction: policy.action ?? "disable",
  };
}

/**
 * The ephemeral properties a version takes from its secret's policy when it is
 * created or enabled: `expires_at = now + time_to_live`, on the database's
 * clock, which is also the clock that decides expiry.
 */
export function propertiesFromPolicy(
  secret: Pick<SecretRow, "ttlMs" | "expiresOnceAccessed" | "ephemeralAction">,
  enabled: boolean,
): {
  expiresAt: SQL | null;
  expiresOnceAccessed: boolean | null;
  ephemeralAction: string | null;
} {
  if (secret.ephemeralAction === null) {
    return { expiresAt: null, expiresOnceAccessed: null, ephemeralAction: null };
  }
  return {
    expiresAt:
      enabled && secret.ttlMs !== null
        ? sql`now() + ${secret.ttlMs} * interval '1 millisecond'`
        : null,
    expiresOnceAccessed: secret.expiresOnceAccessed ?? false,
    ephemeralAction: secret.ephemeralAction,
  };
}

/**
 * Refuses a restore once the deletion window has passed, even if the sweeper
 * has not destroyed the resource yet: the window is the promise, not the
 * sweeper's timing.
 */
export function checkRestoreWindow(requestedAt: Date, windowMs: number, what: string): void {
  if (requestedAt.getTime() + windowMs <= Date.now()) {
    throw failedPrecondition(
      `${what} was deleted on ${requestedAt.toISOString()}, past the ${Math.round(windowMs / 1000)} s restore window; it can no longer be restored`,
    );
  }
}
