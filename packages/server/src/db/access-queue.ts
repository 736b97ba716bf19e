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
 * synchronously, never batch at all). There is no timer. On Postgres a
 * call that finds nothing in flight is served at once (a lone caller waits
 * for nothing), and up to two batches are in flight, each on its own pool
 * connection, while the next forms. On PGlite (one connection, synchronous
 * WebAssembly) one batch is served at a time, and even the first call waits
 * for its turn of the event loop, so that the calls of that turn join it.
 */
export class AccessQueues {
  private readonly queues = new WeakMap<Db, AccessQueue>();

  constructor(private readonly batching: AccessBatching) {}

  /** Serves one access through its region's queue; undefined when the secret does not exist. */
  access(
    region: { name: string; db: Db; driver?: "postgres" | "pglite" | undefined },
    params: AccessParams,
  ): Promise<AccessRow | undefined> {
    let queue = this.queues.get(region.db);
    if (queue === undefined) {
      queue = new AccessQueue(region.name, region.db, this.batching, region.driver === "postgres");
      this.queues.set(region.db, queue);
    }
    return queue.enqueue(params);
  }
}

/**
 * Batches served at once on Postgres: while one waits on the database, the
 * next forms and goes out on another pool connection. PGlite has one
 * connection and runs synchronously: one at a time.
 */
const POSTGRES_IN_FLIGHT = 2;

class AccessQueue {
  private waiting: Pending[] = [];
  /** Batches being served. */
  private inFlight = 0;
  /** A flush is scheduled for the next turn of the event loop. */
  private scheduled = false;
  private readonly maxInFlight: number;

  constructor(
    private readonly region: string,
    private readonly db: Db,
    private readonly batching: AccessBatching,
    /**
     * Postgres: a call that finds nothing in flight is served at once, and
     * two batches may be in flight. (On PGlite a call served at once would
     * run its WebAssembly before the calls of the same turn could join.)
     */
    private readonly postgres: boolean,
  ) {
    this.maxInFlight = postgres ? POSTGRES_IN_FLIGHT : 1;
  }

  enqueue(params: AccessParams): Promise<AccessRow | undefined> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ params, queuedAt: performance.now(), resolve, reject });
      if (this.postgres && this.inFlight === 0 && !this.scheduled) this.flush();
      else this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight || this.waiting.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const batch = this.take();
    if (batch.length === 0) return;
    this.inFlight++;
    void this.serve(batch).finally(() => {
      this.inFlight--;
      this.schedule();
    });
    this.schedule();
  }

  private async serve(batch: Pending[]): Promise<void> {
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
