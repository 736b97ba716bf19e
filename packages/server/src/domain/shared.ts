import { type SQL, sql } from "drizzle-orm";
import type { Db, Tx } from "../db/client.ts";
import { lockProjectShared } from "../db/projects.ts";
import type { SecretRow } from "../db/schema.ts";
import { lockSecret } from "../db/secrets.ts";
import { inTransaction } from "../db/tx.ts";
import {
  authorize,
  type Permission,
  projectNotFound,
  projectReadable,
  requirePrincipal,
} from "./authz.ts";
import type { Caller, Domain } from "./context.ts";
import { aborted, failedPrecondition, invalid, notFound, permissionDenied } from "./errors.ts";
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
 * Locks a secret for a change: it must exist in the region, the caller must
 * be allowed to change it, it must not be
 * scheduled for deletion (locked), and the caller's etag, when given, must be
 * current.
 */
export async function lockForChange(
  tx: Tx,
  caller: Caller,
  region: string,
  secretId: string,
  etag: string,
  permission: Permission = "write",
): Promise<SecretRow> {
  const secret = await lockSecret(tx, region, secretId);
  if (secret === undefined) throw secretNotFound(secretId);
  authorizeSecret(caller, secret, permission);
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

/** Resolves the request's region and notes it as the home of the call's audit event. */
export function regionFor(domain: Domain, caller: Caller, name: string) {
  const region = domain.regions.resolve(name);
  if (caller.audit) caller.audit.region = region.name;
  return region;
}

/** Notes a project (before its secret is known) in the call's audit event. */
export function noteProject(caller: Caller, projectId: string): void {
  if (caller.audit) caller.audit.facts.projectId = projectId;
}

/**
 * Checks that the caller may do `permission` on a secret, and notes the
 * secret in the call's audit event. A secret outside the caller's grants is
 * NOT_FOUND, exactly as if it did not exist.
 */
export function authorizeSecret(
  caller: Caller,
  secret: Pick<SecretRow, "id" | "projectId" | "path" | "name">,
  permission: Permission,
  hidden: () => Error = () => secretNotFound(secret.id),
): void {
  // Noted before the check: a refused call's event must name the secret it
  // aimed at (the trail is for the project's admins, not for the caller).
  if (caller.audit) {
    Object.assign(caller.audit.facts, {
      projectId: secret.projectId,
      secretId: secret.id,
      secretPath: secret.path,
      secretName: secret.name,
    });
  }
  authorize(requirePrincipal(caller.principal), secret.projectId, secret.path, permission, hidden);
}

/**
 * Checks that the caller may create or move a secret to (project, path):
 * without any grant on the project it is NOT_FOUND; with grants that do not
 * cover the path, or lack the permission, PERMISSION_DENIED.
 */
export function authorizePlacement(caller: Caller, projectId: string, path: string): void {
  const principal = requirePrincipal(caller.principal);
  noteProject(caller, projectId);
  if (projectReadable(principal, projectId)) {
    authorize(principal, projectId, path, "write", () =>
      permissionDenied(`this token's grants on project ${projectId} do not cover path ${path}`),
    );
    return;
  }
  throw projectNotFound(projectId);
}

/**
 * Runs a change to secrets or versions in one transaction, then, after the
 * commit, tells the watch that the region changed. The change's watch events
 * are written inside the transaction by triggers; the announcement (a local
 * wake-up and a NOTIFY to the other replicas) comes only after the commit,
 * so that writers never queue on Postgres's notification lock.
 */
export async function inChange<T>(
  domain: Pick<Domain, "announce">,
  region: { name: string; db: Db },
  fn: (tx: Tx) => Promise<T>,
): Promise<T> {
  const result = await inTransaction(region.db, fn);
  domain.announce(region.name);
  return result;
}

/**
 * inChange for a change that puts a secret into a project (creation): the
 * project must exist (NOT_FOUND naming it, else), and it cannot be deleted
 * until the change commits. Projects live in the home region's database:
 * when the secret's region is the home region the check and its share lock
 * are part of the change's own transaction; otherwise a home transaction
 * holds the lock around the region's transaction.
 */
export async function inProjectChange<T>(
  domain: Pick<Domain, "announce" | "regions">,
  region: { name: string; db: Db },
  projectId: string,
  fn: (tx: Tx) => Promise<T>,
): Promise<T> {
  const requireProject = async (tx: Tx) => {
    if (!(await lockProjectShared(tx, projectId))) throw projectNotFound(projectId);
  };
  const home = domain.regions.resolve("");
  if (home.db === region.db) {
    return inChange(domain, region, async (tx) => {
      await requireProject(tx);
      return fn(tx);
    });
  }
  return inTransaction(home.db, async (htx) => {
    await requireProject(htx);
    return inChange(domain, region, fn);
  });
}
