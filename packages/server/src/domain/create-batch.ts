import { performance } from "node:perf_hooks";
import type { Db } from "../db/client.ts";
import type { SecretRow } from "../db/schema.ts";
import { retryingConflicts } from "../db/tx.ts";
import { insertedVersion, type NewVersion } from "../db/versions.ts";
import { type BatchedVersion, writeVersionBatch } from "../db/versions-batch.ts";
import { auditParams, markRecorded } from "./audit.ts";
import type { DomainDeps } from "./context.ts";
import {
  type CreatedVersion,
  createAlone,
  type VersionRequest,
  versionToInsert,
} from "./new-version.ts";

/**
 * Group commit for CreateSecretVersion: the creates waiting on a database
 * are written by one transaction (lock their secrets, one statement for all
 * the versions, their secrets' bumps and their audit events, one COMMIT:
 * two round trips on Postgres, see writeVersionBatch), so that BEGIN, the
 * round trips and COMMIT are paid once per batch instead of once per call. Each caller still gets exactly what it would alone: its
 * checks run on its own locked secret row, and a refused create (etag,
 * permission, quota, payload) fails alone while the others are written. A
 * create whose secret another transaction holds is not waited for: it runs
 * on its own (createAlone), so one busy secret never stalls the batch.
 *
 * No timer: a batch is whatever queued while the previous one ran (the
 * flush is scheduled with setImmediate, after the I/O callbacks that queue
 * calls), so a create alone waits no longer than before, and takes the
 * one-create path (createAlone).
 */

/** The most creates one transaction writes. */
const MAX_BATCH = 64;
/**
 * Batches in flight at once per database: while one waits on Postgres, the
 * next is formed and sent on another pool connection.
 */
const MAX_FLUSHES = 2;

interface Job {
  /** The caller's domain: the one database may serve domains with other limits (tests do). */
  domain: DomainDeps;
  request: VersionRequest;
  /** performance.now() when it joined the queue. */
  queuedAt: number;
  resolve: (created: CreatedVersion) => void;
  reject: (err: unknown) => void;
}

class CreateQueue {
  private readonly waiting: Job[] = [];
  private flushing = 0;
  private scheduled = false;

  constructor(private readonly db: Db) {}

  push(job: Job): void {
    this.waiting.push(job);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.flushing >= MAX_FLUSHES || this.waiting.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const batch = this.take();
      observe(batch);
      this.flushing++;
      void flush(this.db, batch)
        // A bug past the transaction must not leave callers waiting forever
        // (rejecting a settled promise does nothing).
        .catch((err: unknown) => {
          for (const job of batch) job.reject(err);
        })
        .finally(() => {
          this.flushing--;
          this.schedule();
        });
      this.schedule();
    });
  }

  /** Up to MAX_BATCH waiting creates, in arrival order, at most one per secret. */
  private take(): Job[] {
    const batch: Job[] = [];
    const secrets = new Set<string>();
    for (let i = 0; i < this.waiting.length && batch.length < MAX_BATCH; ) {
      const job = this.waiting[i] as Job;
      if (secrets.has(job.request.secretId)) {
        i++;
        continue;
      }
      secrets.add(job.request.secretId);
      batch.push(job);
      this.waiting.splice(i, 1);
    }
    return batch;
  }
}

const queues = new WeakMap<Db, CreateQueue>();

/** Queues a create for the next batch of its region's database; resolves once it is committed. */
export function createInBatch(
  domain: DomainDeps,
  region: { name: string; db: Db },
  request: VersionRequest,
): Promise<CreatedVersion> {
  let queue = queues.get(region.db);
  if (queue === undefined) {
    queue = new CreateQueue(region.db);
    queues.set(region.db, queue);
  }
  const q = queue;
  return new Promise((resolve, reject) =>
    q.push({ domain, request, queuedAt: performance.now(), resolve, reject }),
  );
}

/** Tells the batch's domain (its metrics) of the batch: size and waits. */
function observe(batch: Job[]): void {
  const first = batch[0];
  if (first?.domain.onCreateBatch === undefined) return;
  const now = performance.now();
  first.domain.onCreateBatch(
    first.request.region,
    batch.length,
    batch.map((j) => (now - j.queuedAt) / 1000),
  );
}

/**
 * What the batch's transaction decided for a create: its version, its
 * refusal, or `alone` when its secret's row was not locked by the batch
 * (held by another transaction, or not found: createAlone waits for the
 * lock, or says why there is none, without holding the batch up).
 */
type Outcome =
  | { job: Job; version: NewVersion }
  | { job: Job; error: unknown }
  | { job: Job; alone: true };

async function flush(db: Db, batch: Job[]): Promise<void> {
  if (batch.length === 1) {
    const [job] = batch as [Job];
    await alone(db, job);
    return;
  }
  let outcomes: Outcome[] = [];
  let rows: Map<string, CreatedVersion>;
  try {
    // What to write, given the secrets the batch locked: decided anew if the batch is retried.
    const decide = (locked: Map<string, SecretRow>): BatchedVersion[] => {
      outcomes = batch.map((job): Outcome => {
        const { request } = job;
        const row = locked.get(request.secretId);
        if (row === undefined) return { job, alone: true };
        try {
          const inRegion = row.region === request.region ? row : undefined;
          return { job, version: versionToInsert(job.domain, request, inRegion) };
        } catch (error) {
          return { job, error };
        }
      });
      return outcomes.flatMap((o): BatchedVersion[] =>
        "version" in o
          ? [
              {
                version: o.version,
                disablePrevious: o.job.request.input.disablePrevious,
                audit: auditParams(o.job.request.caller.audit),
              },
            ]
          : [],
      );
    };
    const ids = batch.map((j) => j.request.secretId);
    const inserted = await retryingConflicts(() => writeVersionBatch(db, ids, decide));
    rows = new Map(inserted.map((r) => [r.secret_id, insertedVersion(r)]));
  } catch {
    // The batch failed as a whole (after retryingConflicts' attempts): each
    // create alone, so that each gets its own answer.
    await Promise.all(batch.map((job) => alone(db, job)));
    return;
  }
  const changed = new Map<string, DomainDeps>();
  for (const outcome of outcomes) {
    const { job } = outcome;
    if ("alone" in outcome) {
      void alone(db, job);
      continue;
    }
    if ("error" in outcome) {
      job.reject(outcome.error);
      continue;
    }
    const row = rows.get(job.request.secretId);
    if (row === undefined) {
      job.reject(new Error("the batched create statement returned no row for a version"));
      continue;
    }
    markRecorded(job.request.caller.audit, { revision: row.revision });
    changed.set(job.request.region, job.domain);
    job.resolve(row);
  }
  for (const [region, domain] of changed) domain.announce(region);
}

/** A create in its own transaction (createAlone), answered. */
async function alone(db: Db, job: Job): Promise<void> {
  try {
    job.resolve(await createAlone(job.domain, { name: job.request.region, db }, job.request));
  } catch (err) {
    job.reject(err);
  }
}
