import { type SQL, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { pruneExchangedTokens } from "../db/identity.ts";
import { rowsOf } from "../db/raw-sql.ts";
import { ephemeralActionSet } from "../db/version-rules.ts";
import { pruneEvents } from "../db/watch-events.ts";
import type { DomainDeps } from "./context.ts";

/** How many rows one statement touches, so that a backlog never holds long locks. */
const BATCH = 500;

export interface SweepCounts {
  expired: number;
  versionsDestroyed: number;
  secretsDestroyed: number;
  watchEventsPruned: number;
  auditEventsPruned: number;
  exchangedTokensPruned: number;
}

/**
 * How long an exchanged token's row is kept after it expired: a day, so that
 * ListTokens with include_inactive still shows recent ones. Every exchange
 * adds a row (an agent renewing every 10 minutes, 144 a day), so they are
 * deleted after that; their audit events stay (they name the token by id).
 */
export const EXCHANGED_TOKEN_RETENTION_MS = 86_400_000;

/** `COFFER_AUDIT_RETENTION`'s default: a year, and a day to spare for leap years and time zones. */
export const DEFAULT_AUDIT_RETENTION_MS = 366 * 86_400_000;

/**
 * One pass of the background sweeper over one region:
 * 1. applies the action of enabled versions past their `expires_at`
 *    (access already refuses them; this makes the status say so and destroys
 *    payloads whose action is `delete`);
 * 2. destroys versions scheduled for deletion longer than the window (the row
 *    stays as a tombstone so the revision is never reused);
 * 3. destroys secrets scheduled for deletion longer than the window;
 * 4. prunes watch events older than their retention;
 * 5. deletes audit events older than theirs (`COFFER_AUDIT_RETENTION`);
 * 6. deletes exchanged tokens expired longer than EXCHANGED_TOKEN_RETENTION_MS.
 *
 * Safe with several replicas sweeping at once: each statement picks its rows
 * with FOR UPDATE SKIP LOCKED and re-checks their state, so a row is handled
 * by exactly one replica and the others skip it.
 */
export async function sweepRegion(
  db: Db,
  deletionWindowMs: number,
  watchRetentionMs = 86_400_000,
  auditRetentionMs = DEFAULT_AUDIT_RETENTION_MS,
): Promise<SweepCounts> {
  const window = sql`${deletionWindowMs} * interval '1 millisecond'`;
  const expired = await inBatches(
    db,
    changeVersions(sql`status = 'enabled' and expires_at <= now()`, ephemeralActionSet("v")),
  );
  const versionsDestroyed = await inBatches(
    db,
    changeVersions(
      sql`status = 'scheduled_for_deletion' and deletion_requested_at <= now() - ${window}`,
      sql`status = 'deleted', deleted_at = now(), key_id = null, wrapped_key = null, ciphertext = null`,
    ),
  );
  const secretsDestroyed = await inBatches(
    db,
    sql`with picked as (
      select id from secrets
      where deletion_requested_at <= now() - ${window}
      limit ${BATCH} for update skip locked
    ), gone as (
      delete from secrets s using picked p where s.id = p.id returning s.id
    )
    select count(*)::int as n from gone`,
  );
  let watchEventsPruned = 0;
  for (let n = BATCH; n === BATCH; watchEventsPruned += n) {
    n = await pruneEvents(db, watchRetentionMs, BATCH);
  }
  let auditEventsPruned = 0;
  for (let n = BATCH; n === BATCH; auditEventsPruned += n) {
    n = await pruneAuditEvents(db, auditRetentionMs, BATCH);
  }
  let exchangedTokensPruned = 0;
  for (let n = BATCH; n === BATCH; exchangedTokensPruned += n) {
    n = await pruneExchangedTokens(db, EXCHANGED_TOKEN_RETENTION_MS, BATCH);
  }
  return {
    expired,
    versionsDestroyed,
    secretsDestroyed,
    watchEventsPruned,
    auditEventsPruned,
    exchangedTokensPruned,
  };
}

/**
 * Deletes up to `batch` audit events older than `retentionMs`, oldest
 * first, in one short statement (its own transaction), and returns how many:
 * a table of millions of old rows is worked through batch by batch, never
 * in one long transaction. Rows another sweeper holds are skipped.
 */
export async function pruneAuditEvents(
  db: Db,
  retentionMs: number,
  batch: number,
): Promise<number> {
  const [row] = rowsOf<{ n: number }>(
    await db.execute(sql`with picked as (
      select id from audit_events
      where time < now() - ${retentionMs} * interval '1 millisecond'
      order by time
      limit ${batch} for update skip locked
    ), gone as (
      delete from audit_events a using picked p where a.id = p.id returning 1
    )
    select count(*)::int as n from gone`),
  );
  return Number(row?.n ?? 0);
}

/**
 * One batch of a version change: picks up to BATCH matching versions no
 * other sweeper holds, applies `set`, and bumps their secrets' etags.
 */
function changeVersions(where: SQL, set: SQL): SQL {
  return sql`with picked as (
    select secret_id, revision from secret_versions
    where ${where}
    limit ${BATCH} for update skip locked
  ), changed as (
    update secret_versions v set ${set}, updated_at = now()
    from picked p where v.secret_id = p.secret_id and v.revision = p.revision
    returning v.secret_id
  ), bumped as (
    update secrets s set generation = s.generation + 1
    where s.id in (select distinct secret_id from changed)
  )
  select count(*)::int as n from changed`;
}

/** Runs a batch statement until a batch comes back short; returns the rows handled. */
async function inBatches(db: Db, batch: SQL): Promise<number> {
  let total = 0;
  for (;;) {
    const [row] = rowsOf<{ n: number }>(await db.execute(batch));
    const n = Number(row?.n ?? 0);
    total += n;
    if (n < BATCH) return total;
  }
}

/** Sweeps every region now and then; returns a function that stops it. */
export function startSweeper(
  domain: DomainDeps,
  intervalMs: number,
  onError: (region: string, err: unknown) => void,
  onSwept: (region: string, counts: SweepCounts) => void = () => {},
): () => Promise<void> {
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const tick = async () => {
    for (const { name, database } of domain.regions.all()) {
      if (stopped) return;
      try {
        const counts = await sweepRegion(
          database.db,
          domain.deletionWindowMs,
          domain.watchRetentionMs,
          domain.auditRetentionMs,
        );
        if (counts.expired + counts.versionsDestroyed + counts.secretsDestroyed > 0) {
          domain.announce(name);
        }
        onSwept(name, counts);
      } catch (err) {
        onError(name, err);
      }
    }
  };
  const timer = setInterval(() => {
    running = running.then(tick);
  }, intervalMs);
  timer.unref();
  running = tick();
  return async () => {
    stopped = true;
    clearInterval(timer);
    await running;
  };
}
