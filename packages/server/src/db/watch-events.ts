import { type SQL, sql } from "drizzle-orm";
import type { Executor } from "./client.ts";
import { executeRendered, render, rowsOf } from "./raw-sql.ts";

/** A place in a region's watch outbox: (transaction id, sequence), compared in that order. */
export interface Position {
  /** The writing transaction's id (xid8): it may exceed 2^53. */
  tx: bigint;
  seq: number;
}

export const ORIGIN: Position = { tx: 0n, seq: 0 };

export function comparePositions(a: Position, b: Position): number {
  if (a.tx !== b.tx) return a.tx < b.tx ? -1 : 1;
  return a.seq - b.seq;
}

/** One outbox event as the watch reads it. */
export interface OutboxEvent {
  position: Position;
  occurredAt: Date;
  kind: string;
  projectId: string;
  secretId: string;
  path: string;
  name: string;
  previousPath: string | null;
  previousName: string | null;
  revision: number;
  versionStatus: string | null;
  singleAccess: boolean;
}

interface Row {
  tx: string;
  seq: string | number;
  occurred_at: string | Date;
  kind: string;
  project_id: string;
  secret_id: string;
  path: string;
  name: string;
  previous_path: string | null;
  previous_name: string | null;
  revision: number;
  version_status: string | null;
  single_access: boolean;
  held: boolean;
}

/**
 * Which events a stream catching up wants, for the database to filter: one
 * project, and when selectors are given, only events whose secret id,
 * location or previous location could match one. It may let through more
 * than the stream shows (the stream still applies its own filter and the
 * caller's scope), never less.
 */
export interface EventQuery {
  projectId: string;
  /** Undefined: every event of the project. */
  selectors?: {
    secretIds: readonly string[];
    locations: readonly { path: string; name: string }[];
    /** Normalized path prefixes, none of them "/". */
    pathPrefixes: readonly string[];
  };
}

function querySql(q: EventQuery): SQL {
  const project = sql`and e.project_id = ${q.projectId}::uuid`;
  const s = q.selectors;
  if (s === undefined) return project;
  const under = (column: SQL) =>
    sql`exists (select 1 from jsonb_array_elements_text(${JSON.stringify(s.pathPrefixes)}::jsonb) p(v)
                where ${column} = p.v or starts_with(${column}, p.v || '/'))`;
  return sql`${project} and (
    e.secret_id::text in (select jsonb_array_elements_text(${JSON.stringify(s.secretIds)}::jsonb))
    or exists (select 1 from jsonb_to_recordset(${JSON.stringify(s.locations)}::jsonb) l(path text, name text)
               where (e.path = l.path and e.name = l.name)
                  or (e.previous_path = l.path and e.previous_name = l.name))
    or ${under(sql`e.path`)}
    or (e.previous_path is not null and ${under(sql`e.previous_path`)}))`;
}

/**
 * Reads up to `limit` events after `after`, in order. Events whose
 * transaction id is not below the oldest transaction still running are held
 * back: a transaction that started earlier may still commit events that
 * order before them, and a cursor must never pass an event not yet visible.
 * Every transaction below that horizon has ended, so what is visible below it
 * is final. `held` says whether something was held back, so the caller knows
 * to look again soon even if no notification comes.
 *
 * `upTo`, when given, bounds the read (inclusive), for catching up to a
 * position already known to be final; `query` then keeps the read to one
 * project's events (and its selectors'), filtered by the database, so a
 * stream resuming from an old cursor reads its own events, not the whole
 * region's outbox.
 */
const EVENT_COLUMNS = sql`e.tx::text as tx, e.seq, e.occurred_at, e.kind, e.project_id, e.secret_id,
  e.path, e.name, e.previous_path, e.previous_name, e.revision, e.version_status, e.single_access,
  e.tx >= pg_snapshot_xmin(pg_current_snapshot()) as held`;

const FEED_READ = render(sql`select ${EVENT_COLUMNS}
  from watch_events e
  where (e.tx, e.seq) > (${sql.placeholder("tx")}::xid8, ${sql.placeholder("seq")}::bigint)
  order by e.tx, e.seq
  limit ${sql.placeholder("limit")}::int`);

export async function readEvents(
  ex: Executor,
  after: Position,
  limit: number,
  upTo?: Position,
  query?: EventQuery,
): Promise<{ events: OutboxEvent[]; held: boolean }> {
  const rows = rowsOf<Row>(
    upTo === undefined && query === undefined
      ? // The feed's read, on every write: prepared by name, parsed once.
        await executeRendered(ex, FEED_READ, "coffer_watch_feed_read", {
          tx: after.tx.toString(),
          seq: after.seq,
          limit,
        })
      : await ex.execute(sql`
          select ${EVENT_COLUMNS}
          from watch_events e
          where (e.tx, e.seq) > (${after.tx.toString()}::xid8, ${after.seq}) ${
            upTo === undefined
              ? sql``
              : sql`and (e.tx, e.seq) <= (${upTo.tx.toString()}::xid8, ${upTo.seq})`
          } ${query === undefined ? sql`` : querySql(query)}
          order by e.tx, e.seq
          limit ${limit}`),
  );
  const events: OutboxEvent[] = [];
  for (const r of rows) {
    if (r.held) return { events, held: true };
    events.push({
      position: { tx: BigInt(r.tx), seq: Number(r.seq) },
      occurredAt: new Date(r.occurred_at),
      kind: r.kind,
      projectId: r.project_id,
      secretId: r.secret_id,
      path: r.path,
      name: r.name,
      previousPath: r.previous_path,
      previousName: r.previous_name,
      revision: r.revision,
      versionStatus: r.version_status,
      singleAccess: r.single_access,
    });
  }
  return { events, held: false };
}

/**
 * The newest final position: every event at or before it is visible and
 * none can appear there later. A watch that starts "now" starts here.
 */
export async function finalHead(ex: Executor): Promise<Position> {
  const [row] = rowsOf<{ tx: string | null; seq: string | number | null }>(
    await ex.execute(sql`
      select tx::text as tx, seq from watch_events
      where tx < pg_snapshot_xmin(pg_current_snapshot())
      order by tx desc, seq desc limit 1`),
  );
  if (row?.tx == null) return ORIGIN;
  return { tx: BigInt(row.tx), seq: Number(row.seq) };
}

/** This database's watch epoch and the newest pruned position. */
export async function watchState(ex: Executor): Promise<{ epoch: string; pruned: Position }> {
  const [row] = rowsOf<{ epoch: string; pruned_tx: string; pruned_seq: string | number }>(
    await ex.execute(
      sql`select epoch, pruned_tx::text as pruned_tx, pruned_seq from watch_state where id`,
    ),
  );
  if (row === undefined) throw new Error("watch_state has no row: migration 0003 did not run");
  return { epoch: row.epoch, pruned: { tx: BigInt(row.pruned_tx), seq: Number(row.pruned_seq) } };
}

/**
 * Deletes up to `batch` events older than `retentionMs` and moves the pruned
 * mark past them, in one statement: a cursor at or before the mark may have
 * missed events and gets a RESYNC. Returns how many were deleted.
 */
export async function pruneEvents(
  ex: Executor,
  retentionMs: number,
  batch: number,
): Promise<number> {
  const [row] = rowsOf<{ n: number }>(
    await ex.execute(sql`
      with doomed as (
        select tx, seq from watch_events
        where occurred_at < now() - ${retentionMs} * interval '1 millisecond'
        order by occurred_at limit ${batch}
        for update skip locked
      ), gone as (
        delete from watch_events e using doomed d
        where e.tx = d.tx and e.seq = d.seq returning e.tx, e.seq
      ), newest as (
        select tx, seq from gone order by tx desc, seq desc limit 1
      ), marked as (
        update watch_state s set pruned_tx = n.tx, pruned_seq = n.seq
        from newest n where s.id and (n.tx, n.seq) > (s.pruned_tx, s.pruned_seq)
      )
      select count(*)::int as n from gone`),
  );
  return Number(row?.n ?? 0);
}
