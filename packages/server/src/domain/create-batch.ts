import { performance } from "node:perf_hooks";
import type { Db } from "../db/client.ts";
import type { SecretRow } from "../db/schema.ts";
import { retryingConflicts } from "../db/tx.ts";
import { type InsertedRow, insertedVersion } from "../db/versions.ts";
import {
  type BatchedVersion,
  writeVersionBatch,
  writeVersionsIfUnchanged,
} from "../db/versions-batch.ts";
import { markRecorded } from "./audit.ts";
import type { DomainDeps } from "./context.ts";
import {
  type CreatedVersion,
  createAlone,
  rowAfter,
  type VersionRequest,
  versionToWrite,
} from "./new-version.ts";

/**
 * Group commit for CreateSecretVersion: the creates waiting on a database
 * are written together, so that BEGIN, the round trips and COMMIT are paid
 * once per batch instead of once per call. Each caller still gets exactly
 * what it would alone: its checks run on its own secret's row, and a
 * refused create (etag, permission, quota, payload) fails alone while the
 * others are written.
 *
 * A batch is written in up to two steps:
 * - Creates on secrets this process wrote last are decided on the rows as
 *   it left them (`known`) and written by one statement, in a transaction of
 *   its own, that writes each only while its secret's row is unchanged and
 *   free (writeVersionsIfUnchanged): one round trip on Postgres.
 * - The rest (secrets not known, changed since, held by another transaction,
 *   or refused on the known row: a refusal is told only from the locked
 *   row) are written by one transaction that locks their secrets, decides on
 *   the locked rows and writes (writeVersionBatch: two round trips). A
 *   create whose secret another transaction holds is not waited for: it
 *   runs on its own (createAlone), so one busy secret never stalls the
 *   batch. A single create takes createAlone's path.
 *
 * No timer: a batch is whatever queued while the previous one ran (the
 * flush is scheduled with setImmediate, after the I/O callbacks that queue
 * calls), so a create alone waits no longer than before. A create waits
 * while a batch in flight holds another create on its secret.
 */

/** The most creates one transaction writes. */
const MAX_BATCH = 64;
/**
 * The most secrets' rows a queue remembers (metadata, never a payload or a
 * key: well under a kilobyte each for most secrets); the one written
 * longest ago is forgotten first.
 */
const MAX_KNOWN = 4_096;

interface Job {
  /** The caller's domain: the one database may serve domains with other limits (tests do). */
  domain: DomainDeps;
  request: VersionRequest;
  /** performance.now() when it joined the queue. */
  queuedAt: number;
  resolve: (created: CreatedVersion) => void;
  reject: (err: unknown) => void;
  /**
   * The version decided (and sealed) when the create joined the queue, on
   * its secret's remembered row (its `decidedOn`); used only if that row is
   * still the one remembered when the batch goes out (see CreateQueue.push).
   */
  early?: BatchedVersion;
}

class CreateQueue {
  private readonly waiting: Job[] = [];
  private scheduled = false;
  /** Secrets with a create in a batch in flight, and that create. */
  private readonly busy = new Map<string, Job>();
  /** Secrets' rows as this process's creates left them, by id. */
  private readonly known = new Map<string, SecretRow>();
  /**
   * Remembered rows a waiting create was decided on early: a second create
   * on the same row will be decided again anyway (the first moves the row).
   */
  private readonly decidedEarly = new WeakSet<SecretRow>();

  constructor(readonly db: Db) {}

  /**
   * Queues a create. One on a remembered secret that no batch holds is
   * decided and sealed now, while the batch in flight runs on Postgres,
   * rather than when its own batch goes out: then the database waits for
   * nothing but the statement to be built. Its decision is used only if
   * its secret's row is still the one it was decided on (a batch in flight
   * that writes the secret remembers a new row), so only the first create
   * waiting on a row is decided early.
   */
  push(job: Job): void {
    const id = job.request.secretId;
    const row = this.busy.has(id) ? undefined : this.known.get(id);
    if (row !== undefined && !this.decidedEarly.has(row)) {
      this.decidedEarly.add(row);
      const outcome = decide(job, row);
      if ("write" in outcome) job.early = outcome.write;
    }
    this.waiting.push(job);
    this.schedule();
  }

  /** The secret's row as this process's last create on it left it, if it is remembered. */
  knownRow(id: string): SecretRow | undefined {
    return this.known.get(id);
  }

  remember(row: SecretRow): void {
    this.known.delete(row.id);
    this.known.set(row.id, row);
    if (this.known.size > MAX_KNOWN) {
      for (const id of this.known.keys()) {
        this.known.delete(id);
        break;
      }
    }
  }

  forget(id: string): void {
    this.known.delete(id);
  }

  /**
   * Whether another batch may go out now: while at most one create is in
   * flight. So one batch is in flight at a time, and a second only while the
   * first carries a single create: under light load the new create would
   * otherwise wait a round trip for nothing, and under load the creates that
   * wait go out together, which costs less per create. Measured with
   * bench/probes/ab-writes.ts against two batches in flight at all times
   * (bench/RESULTS.md, writes, 2026-12-07, eleventh session): 16 writers
   * +12 % creates/s, 2 writers even.
   */
  private mayLaunch(): boolean {
    return this.busy.size <= 1;
  }

  /** Launches a batch once the I/O callbacks that queue creates have run. */
  private schedule(): void {
    if (this.scheduled || !this.mayLaunch() || this.waiting.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.launch();
    });
  }

  /** Sends the waiting creates that may go to the database, as one batch. */
  private launch(): void {
    if (!this.mayLaunch()) return;
    const batch = this.take();
    // Every waiting create is on a secret a batch in flight holds: its release launches again.
    if (batch.length === 0) return;
    observe(batch);
    for (const job of batch) this.busy.set(job.request.secretId, job);
    void flush(this, batch)
      // A bug past the transaction must not leave callers waiting forever
      // (rejecting a settled promise does nothing).
      .catch((err: unknown) => {
        for (const job of batch) job.reject(err);
      })
      .finally(() => this.release(batch));
    this.schedule();
  }

  /**
   * Frees the secrets of creates that are written (or failed) for the next
   * batch, and launches it at once: called before their callers are
   * answered, so that the database writes the next batch while this process
   * sends those answers (answer()), and again when the batch ends, when a
   * later batch may hold the same secrets for creates of their own.
   */
  release(jobs: Job[]): void {
    for (const job of jobs) {
      if (this.busy.get(job.request.secretId) === job) this.busy.delete(job.request.secretId);
    }
    this.launch();
  }

  /**
   * Up to MAX_BATCH waiting creates, in arrival order, at most one per
   * secret, none on a secret a batch in flight holds.
   */
  private take(): Job[] {
    const batch: Job[] = [];
    const secrets = new Set<string>();
    for (let i = 0; i < this.waiting.length && batch.length < MAX_BATCH; ) {
      const job = this.waiting[i] as Job;
      const id = job.request.secretId;
      if (secrets.has(id) || this.busy.has(id)) {
        i++;
        continue;
      }
      secrets.add(id);
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
 * What a batch decided for a create: its version, its refusal, or `alone`
 * when its secret's row was not locked by the batch (held by another
 * transaction, or not found: createAlone waits for the lock, or says why
 * there is none, without holding the batch up).
 */
type Outcome =
  | { job: Job; write: BatchedVersion }
  | { job: Job; error: unknown }
  | { job: Job; alone: true };

async function flush(queue: CreateQueue, batch: Job[]): Promise<void> {
  const rest = await writeKnown(queue, batch);
  if (rest.length === 0) return;
  if (rest.length === 1) {
    await alone(queue, rest[0] as Job);
    return;
  }
  await writeLocked(queue, rest);
}

/**
 * Writes the creates on secrets whose rows this process knows, decided on
 * those rows, by one statement (writeVersionsIfUnchanged). Returns the
 * creates it did not write, to be decided again on their locked rows.
 */
async function writeKnown(queue: CreateQueue, batch: Job[]): Promise<Job[]> {
  const rest: Job[] = [];
  const decided: { job: Job; write: BatchedVersion }[] = [];
  for (const job of batch) {
    const row = queue.knownRow(job.request.secretId);
    const outcome =
      row === undefined
        ? undefined
        : job.early?.decidedOn === row
          ? { job, write: job.early }
          : decide(job, row);
    if (outcome !== undefined && "write" in outcome) decided.push(outcome);
    else rest.push(job);
  }
  if (decided.length === 0) return rest;
  let inserted: InsertedRow[];
  try {
    inserted = await writeVersionsIfUnchanged(
      queue.db,
      decided.map((d) => d.write),
    );
  } catch {
    // Nothing of the statement was written: each is decided again under its lock.
    return batch;
  }
  const rows = new Map(inserted.map((r) => [r.secret_id, r]));
  const written: { job: Job; write: BatchedVersion; row: InsertedRow }[] = [];
  for (const { job, write } of decided) {
    const row = rows.get(job.request.secretId);
    if (row === undefined) {
      queue.forget(job.request.secretId);
      rest.push(job);
    } else {
      written.push({ job, write, row });
    }
  }
  answer(queue, written);
  return rest;
}

/**
 * Writes creates by one transaction that locks their secrets
 * (writeVersionBatch) and decides each on its locked row.
 */
async function writeLocked(queue: CreateQueue, batch: Job[]): Promise<void> {
  let outcomes: Outcome[] = [];
  let rows: Map<string, InsertedRow>;
  try {
    // What to write, given the secrets the batch locked: decided anew if the batch is retried.
    const decideLocked = (locked: Map<string, SecretRow>): BatchedVersion[] => {
      outcomes = batch.map((job): Outcome => {
        const row = locked.get(job.request.secretId);
        return row === undefined ? { job, alone: true } : decide(job, row);
      });
      return outcomes.flatMap((o) => ("write" in o ? [o.write] : []));
    };
    const ids = batch.map((j) => j.request.secretId);
    const inserted = await retryingConflicts(() => writeVersionBatch(queue.db, ids, decideLocked));
    rows = new Map(inserted.map((r) => [r.secret_id, r]));
  } catch {
    // The batch failed as a whole (after retryingConflicts' attempts): each
    // create alone, so that each gets its own answer.
    await Promise.all(batch.map((job) => alone(queue, job)));
    return;
  }
  const written: { job: Job; write: BatchedVersion; row: InsertedRow }[] = [];
  for (const outcome of outcomes) {
    const { job } = outcome;
    if ("alone" in outcome) {
      void alone(queue, job);
    } else if ("error" in outcome) {
      job.reject(outcome.error);
    } else {
      const row = rows.get(job.request.secretId);
      if (row === undefined) {
        job.reject(new Error("the batched create statement returned no row for a version"));
      } else {
        written.push({ job, write: outcome.write, row });
      }
    }
  }
  answer(queue, written);
}

/** A create decided on its secret's row: the version to write, or its refusal. */
function decide(job: Job, row: SecretRow): Outcome {
  const { request } = job;
  try {
    const inRegion = row.region === request.region ? row : undefined;
    return { job, write: versionToWrite(job.domain, request, inRegion) };
  } catch (error) {
    return { job, error };
  }
}

/**
 * Answers the written creates: remembers their secrets' rows, lets the next
 * batch go (release), then resolves their callers and tells the watch.
 */
function answer(
  queue: CreateQueue,
  written: { job: Job; write: BatchedVersion; row: InsertedRow }[],
): void {
  for (const { write, row } of written) queue.remember(rowAfter(write, row));
  queue.release(written.map((w) => w.job));
  const changed = new Map<string, DomainDeps>();
  for (const { job, row } of written) {
    markRecorded(job.request.caller.audit, { revision: row.revision });
    changed.set(job.request.region, job.domain);
    job.resolve(insertedVersion(row));
  }
  for (const [region, domain] of changed) domain.announce(region);
}

/** A create in its own transaction (createAlone), answered. */
async function alone(queue: CreateQueue, job: Job): Promise<void> {
  try {
    job.resolve(
      await createAlone(
        job.domain,
        { name: job.request.region, db: queue.db },
        job.request,
        (row) => queue.remember(row),
      ),
    );
  } catch (err) {
    job.reject(err);
  }
}
