import type { Db, Tx } from "./client.ts";
import { pgErrorCode } from "./errors.ts";

/** Serialization failures and deadlocks: Postgres rolled the work back as a whole, so it can run again. */
const RETRYABLE = new Set(["40001", "40P01"]);
const MAX_ATTEMPTS = 3;

/**
 * The one retry loop of the database layer: runs `work` (a transaction, or a
 * single statement, which is its own transaction) again, a bounded number of
 * times after a short random pause, when Postgres reports a serialization
 * failure or a deadlock; any other error, or the last attempt's, is thrown.
 */
export async function retryingConflicts<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      const code = pgErrorCode(err);
      if (attempt >= MAX_ATTEMPTS || code === undefined || !RETRYABLE.has(code)) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
    }
  }
}

/**
 * Runs `fn` in a transaction, retried as retryingConflicts says. Side effects
 * that must follow a commit (notifications, files) belong after this returns.
 */
export function inTransaction<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return retryingConflicts(() => db.transaction(fn));
}

/**
 * Runs a change to secrets or versions in one transaction (inTransaction),
 * then, after the commit, tells the watch that the region changed. The
 * change's watch events are written inside the transaction by triggers; the
 * announcement (a local wake-up and a NOTIFY to the other replicas) comes only
 * after the commit, so that writers never queue on Postgres's notification
 * lock.
 */
export async function inTransactionThenAnnounce<T>(
  watch: { announce(region: string): void },
  region: { name: string; db: Db },
  fn: (tx: Tx) => Promise<T>,
): Promise<T> {
  const result = await inTransaction(region.db, fn);
  watch.announce(region.name);
  return result;
}
