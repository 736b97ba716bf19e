import type { Tx } from "../db/client.ts";
import type { SecretRow } from "../db/schema.ts";
import { countLiveSecrets, lockProjectSecrets } from "../db/secrets.ts";
import type { DomainDeps } from "./context.ts";
import { resourceExhausted } from "./errors.ts";

/**
 * Refuses when the project already has its limit of live secrets in this
 * region. Call it inside the transaction that makes a secret live, before
 * the row is written: it takes the project's lock first, so concurrent
 * creates on any number of replicas are counted one after another and
 * cannot overshoot. (The count, one row of project_secret_counts, is read
 * after the lock is granted, and under READ COMMITTED each statement sees
 * what earlier holders committed.)
 */
export async function checkSecretQuota(
  tx: Tx,
  domain: Pick<DomainDeps, "limits">,
  region: string,
  projectId: string,
): Promise<void> {
  await lockProjectSecrets(tx, projectId);
  const limit = domain.limits.secretsPerProject;
  if ((await countLiveSecrets(tx, region, projectId)) >= limit) {
    throw resourceExhausted(
      `project ${projectId} has reached its limit of ${limit} secrets in region ${region} (COFFER_MAX_SECRETS_PER_PROJECT); delete secrets or raise the limit`,
      { quota: { subject: `project:${projectId}`, limit }, resource: { type: "secret", id: "" } },
    );
  }
}

/**
 * Refuses when the secret already has its limit of versions whose payload is
 * not destroyed: its `kept_versions`, as read by the row lock
 * (lockSecretForChange) that the caller holds until it commits. Every change
 * to that count updates the row, so waits for the lock: the count read is
 * exact until then, however many creates, destroys and sweeps run at once.
 */
export function checkVersionQuota(
  domain: Pick<DomainDeps, "limits">,
  secret: Pick<SecretRow, "id" | "keptVersions">,
): void {
  const limit = domain.limits.versionsPerSecret;
  const secretId = secret.id;
  if (secret.keptVersions >= limit) {
    throw resourceExhausted(
      `secret ${secretId} has reached its limit of ${limit} versions (COFFER_MAX_VERSIONS_PER_SECRET); delete old versions (a deleted version stops counting once destroyed, at the end of the deletion window) or raise the limit`,
      {
        quota: { subject: `secret:${secretId}`, limit },
        resource: { type: "secret_version", id: "" },
      },
    );
  }
}
