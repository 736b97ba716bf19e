import { type SQL, sql } from "drizzle-orm";
import type { Tx } from "../db/client.ts";
import type { SecretRow } from "../db/schema.ts";
import { updateSecret } from "../db/secrets.ts";
import { inTransactionThenAnnounce } from "../db/tx.ts";
import { findVersion, updateVersion } from "../db/versions.ts";
import { resolveAddress } from "./addressing.ts";
import { recordInTransaction } from "./audit.ts";
import type { Permission } from "./authz.ts";
import type { Caller } from "./caller.ts";
import type { DomainDeps } from "./context.ts";
import { propertiesFromPolicy } from "./ephemeral-policy.ts";
import { failedPrecondition } from "./errors.ts";
import type { VersionView } from "./read-versions.ts";
import { versionNotFound } from "./read-versions.ts";
import { checkRestoreWindow } from "./restore-window.ts";
import { lockSecretForChange } from "./secret-lock.ts";
import { parseRevision } from "./validation.ts";

export interface VersionRef {
  region: string;
  secretId: string;
  revision: string;
  etag: string;
}

type Transition = (
  version: VersionView,
  secret: SecretRow,
) => Record<string, unknown | SQL> | undefined;

/**
 * Runs one status change of a version under the secret's lock. A transition
 * returns the columns to set, undefined when the version is already in the
 * wanted state (the call then succeeds without a change), or throws when the
 * change is not allowed from the current status.
 */
async function transition(
  domain: DomainDeps,
  caller: Caller,
  input: VersionRef,
  change: Transition,
  permission: Permission = "write",
) {
  const { region, id } = resolveAddress(domain, caller, input, "secretId");
  const ref = parseRevision(input.revision);
  return inTransactionThenAnnounce(domain, region, async (tx: Tx) => {
    const secret = await lockSecretForChange(tx, caller, region.name, id, input.etag, permission);
    const version = await findVersion(tx, id, ref);
    if (version === undefined) throw versionNotFound(id, input.revision);
    const set = change(version, secret);
    await recordInTransaction(tx, caller.audit, { revision: version.revision });
    if (set === undefined) return version;
    await updateVersion(tx, id, version.revision, set);
    await updateSecret(tx, id, {});
    const after = await findVersion(tx, id, { kind: "number", revision: version.revision });
    if (after === undefined) throw new Error("version vanished inside its transaction");
    return after;
  });
}

function refuseGone(v: VersionView, verb: string): void {
  if (v.status === "scheduled_for_deletion") {
    throw failedPrecondition(
      `version ${v.revision} is scheduled for deletion and cannot be ${verb}; restore it first (RestoreSecretVersion)`,
    );
  }
  if (v.status === "deleted") {
    throw failedPrecondition(
      `version ${v.revision} is destroyed: its payload is gone for good, so it cannot be ${verb}`,
    );
  }
}

/**
 * Enables a version; an ephemeral policy gives it fresh properties (a new time
 * to live, from now). A consumed single-access version is refused: it is
 * never served again, by anyone. Enabling never weakens the version's other
 * properties: it stays single-access, and keeps the `delete` action, if it had
 * them, even when the policy was relaxed since (the relaxed policy applies to
 * new versions). An expired version whose action is `delete` reads as deleted
 * (db/versions.ts effectiveStatus) and is refused as such.
 */
export function enableVersion(domain: DomainDeps, caller: Caller, input: VersionRef) {
  return transition(domain, caller, input, (v, secret) => {
    refuseGone(v, "enabled");
    if (v.consumedAt !== null) {
      throw failedPrecondition(
        `version ${v.revision} was consumed by its single access on ${v.consumedAt.toISOString()} and can never be served again; create a new version instead`,
      );
    }
    // An expired version reads as disabled here, so only a live one is left alone.
    if (v.status === "enabled") return undefined;
    const fresh = propertiesFromPolicy(secret, true);
    return {
      status: "enabled",
      ...fresh,
      ...(fresh.ephemeralAction !== null && {
        expiresOnceAccessed: fresh.expiresOnceAccessed === true || v.expiresOnceAccessed === true,
        ephemeralAction: v.ephemeralAction === "delete" ? "delete" : fresh.ephemeralAction,
      }),
    };
  });
}

/** Disables a version: its payload is kept but cannot be accessed. */
export function disableVersion(domain: DomainDeps, caller: Caller, input: VersionRef) {
  return transition(domain, caller, input, (v) => {
    refuseGone(v, "disabled");
    if (v.status === "disabled") return undefined;
    return { status: "disabled" };
  });
}

/** Schedules a version for deletion; the sweeper destroys it after the deletion window. */
export function deleteVersion(domain: DomainDeps, caller: Caller, input: VersionRef) {
  return transition(domain, caller, input, (v) => {
    if (v.status === "scheduled_for_deletion") {
      throw failedPrecondition(`version ${v.revision} is already scheduled for deletion`);
    }
    refuseGone(v, "deleted");
    return { status: "scheduled_for_deletion", deletionRequestedAt: sql`now()` };
  });
}

/** Cancels a version's scheduled deletion; it comes back disabled, to be enabled on purpose. */
export function restoreVersion(domain: DomainDeps, caller: Caller, input: VersionRef) {
  return transition(domain, caller, input, (v) => {
    if (v.status !== "scheduled_for_deletion") {
      throw failedPrecondition(
        `version ${v.revision} is ${v.status === "deleted" ? "destroyed" : "not scheduled for deletion"}, so there is nothing to restore`,
      );
    }
    if (v.deletionRequestedAt !== null) {
      checkRestoreWindow(v.deletionRequestedAt, domain.deletionWindowMs, `version ${v.revision}`);
    }
    return { status: "disabled", deletionRequestedAt: null };
  });
}

/**
 * Destroys a version's payload at once: the data key and ciphertext are
 * erased in this transaction, as the sweeper does at the end of the restore
 * window, and the row stays as a tombstone (status deleted) so that its
 * revision is never given out again. Admin role only: it skips the window
 * that protects against a mistaken delete, so it cannot be undone. Works on a
 * version scheduled for deletion too; one already destroyed is left as it is.
 */
export function destroyVersion(domain: DomainDeps, caller: Caller, input: VersionRef) {
  return transition(
    domain,
    caller,
    input,
    (v) => {
      if (v.status === "deleted") return undefined;
      return {
        status: "deleted",
        deletedAt: sql`now()`,
        deletionRequestedAt: null,
        keyId: null,
        wrappedKey: null,
        ciphertext: null,
      };
    },
    "admin",
  );
}
