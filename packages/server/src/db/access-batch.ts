import { sql } from "drizzle-orm";
import { type AccessParams, type AccessRow, type RawAccessRow, toAccessRow } from "./access.ts";
import type { Db } from "./client.ts";
import type { NamedStatement } from "./pglite-statements.ts";
import { prepareStatement, render, takeRows } from "./raw-sql.ts";
import { ephemeralActionSet, servableIn } from "./version-rules.ts";

const servableSv = servableIn("sv");
const p = (name: string) => sql.placeholder(name);

/** The columns of a found secret, per caller, with whether the caller may read its payloads. */
const secretColumns = sql`c.i, x.id, x.project_id, x.path, x.name, x.type,
    x.deletion_requested_at is not null as deleting,
    (c.see_all or exists (
      select 1 from g
      where g.i = c.i and g.project = x.project_id::text
        and (g.prefix = '/' or x.path = g.prefix or starts_with(x.path, g.prefix || '/'))
    )) as allowed`;

/**
 * A batch of accesses in one statement (one round trip, one transaction, one
 * commit), each caller one row of the input arrays (`c`, numbered `i` from
 * 1), its grants the rows of `g` that carry its number. For each caller it
 * finds the secret, checks the grants, picks the version, consumes it when
 * it is single-access, bumps the secret's generation (its etag), and writes
 * the call's audit event. Each write happens only for a caller who is
 * allowed and whose version is servable, so a refused call changes nothing
 * and the application explains it afterwards with extra queries (the
 * failure path only). Every caller gets its row, in input order, whatever
 * the others asked.
 *
 * Single access. Of the callers of one batch who would consume the same
 * version, the first (DISTINCT ON) is its one candidate; the others are
 * refused as a later caller alone would be. The candidates' rows are locked
 * in one fixed order (versions by secret and revision, then their secrets by
 * id), taken in full before any row is changed (the aggregates over `lk` and
 * `sl` must read every lock first): batches that lock in arrival order
 * deadlock each other.
 *
 * Plans. A connection runs this prepared statement with the generic plan it
 * makes after five runs, for the table sizes of that moment (small tables
 * favour sequential scans), until the next ANALYZE, which may never come:
 * the shape must not let a scan of a whole table into the common path.
 * Postgres's CPU per access call grew with the versions in the database
 * (60, 117 and 309 µs over three bench runs that each added ~30,000) while
 * the consuming UPDATE scanned the versions for single-access candidates on
 * every batch. So the single-access steps (`lk`, `consumed`, `sl`) are gated
 * on having something to do (`exists`: a one-time filter, checked before
 * any scan), and secrets are found by id one caller at a time (the lateral
 * `offset 0` keeps Postgres from turning it into a hash join over every
 * secret), as versions are in `v`.
 *
 * The consuming UPDATE re-checks `consumed_at is null`
 * and servability on the row it changes (Postgres re-evaluates the WHERE
 * clause on the newest row version after a concurrent commit), so of any
 * number of concurrent consumers, in any number of batches on any number of
 * replicas, exactly one gets a row back. The payload returned is the one the
 * statement's snapshot read (`v`); the consumption may destroy it in the
 * same statement. No SKIP LOCKED: a caller who skipped a locked version
 * could not be told it was already accessed, since its holder may roll back.
 *
 * The audit insert mirrors okEventInsert (db/audit.ts) over arrays.
 */
const batchStatement = sql`with c as (
  select * from unnest(
    ${p("secretIds")}::uuid[], ${p("projectIds")}::uuid[], ${p("paths")}::text[],
    ${p("names")}::text[], ${p("regions")}::text[], ${p("all")}::text[]::boolean[],
    ${p("lo")}::int[], ${p("hi")}::int[], ${p("enabledOnly")}::text[]::boolean[], ${p("noConsume")}::text[]::boolean[],
    ${p("auditIds")}::uuid[], ${p("tokenIds")}::uuid[], ${p("methods")}::text[],
    ${p("requestIds")}::text[], ${p("peers")}::text[]
  ) with ordinality as c(secret_id, project_id, path, name, region, see_all, lo, hi,
    enabled_only, no_consume, audit_id, token_id, method, request_id, peer, i)
),
g as (
  select * from unnest(${p("grantCallers")}::int[], ${p("grantProjects")}::text[], ${p("grantPrefixes")}::text[])
    as g(i, project, prefix)
),
s as (
  select ${secretColumns} from c cross join lateral (
    select * from secrets x where x.id = c.secret_id and x.region = c.region offset 0
  ) x
  union all
  select ${secretColumns} from c join secrets x
    on c.secret_id is null and x.project_id = c.project_id and x.region = c.region
    and x.path = c.path and x.name = c.name and x.deletion_requested_at is null
),
v as (
  select s.i, sv.secret_id, sv.revision, coalesce(sv.expires_once_accessed, false) as once,
    sv.data_crc32, sv.key_id, sv.wrapped_key, sv.ciphertext, ${servableSv} as servable,
    sv.key_id = any(${p("keyIds")}::text[]) as key_held
  from s join c on c.i = s.i
  cross join lateral (
    select * from secret_versions sv
    where sv.secret_id = s.id and s.allowed and not s.deleting
      and sv.revision between c.lo and c.hi
      and (not c.enabled_only or ${servableSv})
    order by sv.revision desc limit 1
  ) sv
),
want as (
  select distinct on (v.secret_id, v.revision) v.i, v.secret_id, v.revision
  from v join c on c.i = v.i
  where v.servable and v.once and v.key_held and not c.no_consume
  order by v.secret_id, v.revision, v.i
),
lk as (
  select t.secret_id, t.revision from secret_versions t
  where exists (select 1 from want)
    and (t.secret_id, t.revision) in (select secret_id, revision from want)
  order by t.secret_id, t.revision
  for no key update of t
),
consumed as (
  update secret_versions t set
    ${ephemeralActionSet("t")},
    consumed_at = now(),
    updated_at = now()
  from (select array_agg(secret_id) as ids, array_agg(revision) as revs from lk) l,
    unnest(l.ids, l.revs) as k(secret_id, revision)
  where exists (select 1 from lk) and t.secret_id = k.secret_id and t.revision = k.revision
    and t.expires_once_accessed = true and ${servableIn("t")}
  returning t.secret_id, t.revision, t.consumed_at
),
mine as (
  select w.i, consumed.consumed_at from consumed join want w using (secret_id, revision)
),
sl as (
  select x.id from secrets x
  where exists (select 1 from consumed) and x.id in (select secret_id from consumed)
  order by x.id
  for no key update of x
),
bumped as (
  update secrets x set generation = x.generation + n.n, updated_at = now()
  from (select array_agg(id) as ids from sl) l, unnest(l.ids) as k(id),
    (select secret_id, count(*) as n from consumed group by secret_id) n
  where x.id = k.id and n.secret_id = k.id
  returning 1
),
ok as (
  select v.i, (not v.once or not c.no_consume) as reveal
  from v join c on c.i = v.i left join mine m on m.i = v.i
  where v.servable
    and case when v.once then c.no_consume or m.i is not null else v.key_held end
),
audited as (
  insert into audit_events
    (id, token_id, project_id, method, secret_id, secret_path, secret_name, revision, outcome, request_id, peer)
  select c.audit_id, c.token_id, s.project_id, c.method, s.id, s.path, s.name, v.revision, 'OK',
    c.request_id, c.peer
  from ok join c on c.i = ok.i join s on s.i = ok.i join v on v.i = ok.i
  where c.audit_id is not null
  returning 1
)
select c.i, s.id as secret_id, s.project_id, s.path, s.name, s.type, s.deleting, s.allowed,
  v.revision, v.servable, v.once, v.data_crc32::text as data_crc32, v.key_id,
  case when coalesce(ok.reveal, v.servable and not v.key_held) then v.wrapped_key end as wrapped_key,
  case when coalesce(ok.reveal, v.servable and not v.key_held) then v.ciphertext end as ciphertext,
  ok.i is not null as served,
  m.consumed_at::text as consumed_at
from c left join s on s.i = c.i left join v on v.i = c.i
  left join ok on ok.i = c.i left join mine m on m.i = c.i
order by c.i`;

/**
 * The statement, rendered to SQL text once and prepared once per database
 * (prepareStatement: postgres-js keeps a named server-side statement per
 * connection, pgliteStatement one per embedded database, so Postgres parses
 * it once). drizzle's `db.execute` would render the template on every call
 * and send an unnamed statement that Postgres parses every time.
 */
const rendered = render(batchStatement);
const prepared = new WeakMap<Db, NamedStatement>();

function statementFor(db: Db): NamedStatement {
  let found = prepared.get(db);
  if (found === undefined) {
    found = prepareStatement(db, rendered, "coffer_access_batch");
    prepared.set(db, found);
  }
  return found;
}

/** A caller whose secret was not found has a row of nulls. */
type RawBatchRow = Omit<RawAccessRow, "secret_id"> & { secret_id: string | null };

/**
 * A boolean as an element of a text array that the statement casts to
 * boolean[]: postgres-js would send an array of JS booleans typed as one
 * boolean, not as an array.
 */
const flag = (b: boolean) => (b ? "t" : "f");

/** The statement's parameters: one element per call, and one per grant of each call. */
function batchValues(calls: readonly AccessParams[]): Record<string, unknown> {
  const grantCallers: number[] = [];
  const grantProjects: string[] = [];
  const grantPrefixes: string[] = [];
  calls.forEach(({ scopes }, index) => {
    if (scopes === "all") return;
    scopes.projects.forEach((project, g) => {
      grantCallers.push(index + 1);
      grantProjects.push(project);
      grantPrefixes.push(scopes.prefixes[g] ?? "");
    });
  });
  const byId = (c: AccessParams) => (c.lookup.by === "id" ? c.lookup : undefined);
  const byPath = (c: AccessParams) => (c.lookup.by === "path" ? c.lookup : undefined);
  return {
    secretIds: calls.map((c) => byId(c)?.secretId ?? null),
    projectIds: calls.map((c) => byPath(c)?.projectId ?? null),
    paths: calls.map((c) => byPath(c)?.path ?? null),
    names: calls.map((c) => byPath(c)?.name ?? null),
    regions: calls.map((c) => c.lookup.region),
    all: calls.map((c) => flag(c.scopes === "all")),
    lo: calls.map((c) => c.lo),
    hi: calls.map((c) => c.hi),
    enabledOnly: calls.map((c) => flag(c.enabledOnly)),
    noConsume: calls.map((c) => flag(c.noConsume)),
    auditIds: calls.map((c) => c.audit?.id ?? null),
    tokenIds: calls.map((c) => c.audit?.tokenId ?? null),
    methods: calls.map((c) => c.audit?.method ?? null),
    requestIds: calls.map((c) => c.audit?.requestId ?? null),
    peers: calls.map((c) => c.audit?.peer ?? null),
    grantCallers,
    grantProjects,
    grantPrefixes,
    keyIds: calls[0]?.keyIds ?? [],
  };
}

/**
 * Serves a batch of accesses in one statement (see batchStatement): one
 * result per call, in order, undefined where the secret does not exist (in
 * that region, or at that address). Every call must carry the same keyIds.
 * A deadlock or serialization failure fails the whole batch, rolled back:
 * the caller (db/access-queue.ts) retries it.
 */
export async function accessBatch(
  db: Db,
  calls: readonly AccessParams[],
): Promise<(AccessRow | undefined)[]> {
  const rows = takeRows(await statementFor(db).execute(batchValues(calls)), (r: RawBatchRow) =>
    r.secret_id === null ? undefined : toAccessRow({ ...r, secret_id: r.secret_id }),
  );
  if (rows.length !== calls.length) {
    throw new Error(`the access statement answered ${rows.length} rows for ${calls.length} calls`);
  }
  return rows;
}
