import { performance } from "node:perf_hooks";
import { type AccessParams, type AccessRow, accessInOneStatement } from "./access.ts";
import { accessBatch } from "./access-batch.ts";
import type { Db } from "./client.ts";
import { pgErrorCode } from "./errors.ts";
import { retryingConflicts } from "./tx.ts";

/** How accesses are grouped: `COFFER_ACCESS_BATCH_MAX`, and who hears of each batch. */
export interface AccessBatching {
  /** The most calls one statement serves. */
  max: number;
  /** Told of each batch as it starts: its region, its size, and how long each call queued (seconds). */
  onBatch?: (region: string, size: number, waitsSeconds: readonly number[]) => void;
}

interface Pending {
  params: AccessParams;
  queuedAt: number;
  resolve: (row: AccessRow | undefined) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit for accesses: the calls of each region database join its
 * queue, and one statement serves a batch of them and writes all their
 * audit events, in one commit (db/access-batch.ts). A batch is flushed from
 * setImmediate, once the calls that arrived with the current turn of the
 * event loop have joined (a microtask would flush before the I/O callbacks
 * that bring the others, and on PGlite, whose WebAssembly runs
 * synchronously, never batch at all). One batch per database is served at
 * a time, and the next one forms meanwhile; there is no timer, so a lone
 * caller is served at once.
 */
export class AccessQueues {
  private readonly queues = new WeakMap<Db, AccessQueue>();

  constructor(private readonly batching: AccessBatching) {}

  /** Serves one access through its region's queue; undefined when the secret does not exist. */
  access(region: { name: string; db: Db }, params: AccessParams): Promise<AccessRow | undefined> {
    let queue = this.queues.get(region.db);
    if (queue === undefined) {
      queue = new AccessQueue(region.name, region.db, this.batching);
      this.queues.set(region.db, queue);
    }
    return queue.enqueue(params);
  }
}

class AccessQueue {
  private waiting: Pending[] = [];
  /** A flush is scheduled or a batch is being served: a new call just joins the queue. */
  private busy = false;

  constructor(
    private readonly region: string,
    private readonly db: Db,
    private readonly batching: AccessBatching,
  ) {}

  enqueue(params: AccessParams): Promise<AccessRow | undefined> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ params, queuedAt: performance.now(), resolve, reject });
      if (!this.busy) {
        this.busy = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    const batch = this.take();
    const now = performance.now();
    try {
      this.batching.onBatch?.(
        this.region,
        batch.length,
        batch.map((p) => (now - p.queuedAt) / 1000),
      );
      await serveBatch(this.db, batch);
    } catch (err) {
      // serveBatch settles every call itself: only the observer can throw here.
      for (const p of batch) p.reject(err);
    } finally {
      if (this.waiting.length > 0) setImmediate(() => void this.flush());
      else this.busy = false;
    }
  }

  /**
   * The next batch: the oldest call, and the calls after it that hold the
   * same master key ids (they differ only across a key rotation), up to the
   * cap; the others keep their place.
   */
  private take(): Pending[] {
    const [first] = this.waiting;
    if (first === undefined) return [];
    const keys = first.params.keyIds;
    const batch: Pending[] = [];
    const rest: Pending[] = [];
    for (const p of this.waiting) {
      if (batch.length < this.batching.max && sameKeys(p.params.keyIds, keys)) batch.push(p);
      else rest.push(p);
    }
    this.waiting = rest;
    return batch;
  }
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  return a === b || (a.length === b.length && a.every((id, i) => id === b[i]));
}

/**
 * Serves a batch. A batch of one runs the single-call statement
 * (accessInOneStatement): cheaper to plan than the batch statement, so a
 * lone caller waits no longer than before batching. A larger batch is
 * retried as a whole on a deadlock or serialization failure
 * (retryingConflicts: a failed statement rolled back every call in it).
 * When it still fails with an error of the database's, each call runs
 * alone, so that one caller's row cannot fail the others: each then gets
 * its own result or its own error. An error without a SQLSTATE (the
 * database unreachable) fails every call at once.
 */
async function serveBatch(db: Db, batch: readonly Pending[]): Promise<void> {
  const [only] = batch;
  if (only !== undefined && batch.length === 1) {
    await alone(db, only);
    return;
  }
  let rows: (AccessRow | undefined)[];
  try {
    rows = await retryingConflicts(() =>
      accessBatch(
        db,
        batch.map((p) => p.params),
      ),
    );
  } catch (err) {
    if (pgErrorCode(err) === undefined) {
      for (const p of batch) p.reject(err);
      return;
    }
    await Promise.all(batch.map((p) => alone(db, p)));
    return;
  }
  for (const [i, p] of batch.entries()) p.resolve(rows[i]);
}

/** Serves one call in a statement of its own (retried on conflicts inside accessInOneStatement). */
function alone(db: Db, p: Pending): Promise<void> {
  return accessInOneStatement(db, p.params).then(p.resolve, p.reject);
}
