import type { SQL } from "drizzle-orm";
import type { SecretRow } from "../db/schema.ts";
import { expiresIn } from "../db/version-rules.ts";
import { invalid } from "./errors.ts";
import { validateTimeToLive } from "./validation.ts";

export type EphemeralAction = "disable" | "delete";

/** A secret's ephemeral policy as a request states it. */
export interface EphemeralPolicyInput {
  ttlMs?: number;
  expiresOnceAccessed: boolean;
  action?: EphemeralAction;
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
 * created or enabled: `expires_at = now + time_to_live` (db/version-rules.ts
 * expiresIn).
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
    expiresAt: enabled && secret.ttlMs !== null ? expiresIn(secret.ttlMs) : null,
    expiresOnceAccessed: secret.expiresOnceAccessed ?? false,
    ephemeralAction: secret.ephemeralAction,
  };
}
