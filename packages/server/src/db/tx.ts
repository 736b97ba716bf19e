import type { Db, Tx } from "./client.ts";
import { pgErrorCode } from "./errors.ts";

/** Serialization failures and deadlocks: safe to run the transaction again. */
const RETRYABLE = new Set(["40001", "40P01"]);
const MAX_ATTEMPTS = 3;

/**
 * Runs `fn` in a transaction, retrying a bounded number of times when
 * Postgres reports a serialization failure or deadlock. Side effects that
 * must follow a commit (notifications, files) belong after this returns.
 */
export async function inTransaction<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction(fn);
    } catch (err) {
      const code = pgErrorCode(err);
      if (attempt >= MAX_ATTEMPTS || code === undefined || !RETRYABLE.has(code)) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
    }
  }
}
