import { fillPlaceholders, sql } from "drizzle-orm";
import type { StatementAudit } from "./audit.ts";
import type { Db, Executor } from "./client.ts";
import { isConnectionLost } from "./errors.ts";
import type { NamedStatement } from "./pglite-statements.ts";
import { executeRendered, postgresClientOf, prepareStatement, render, rowsOf } from "./raw-sql.ts";
import type { SecretRow } from "./schema.ts";
import { lockFree, lockFreeSecrets } from "./secrets.ts";
import { expiresIn, servableIn } from "./version-rules.ts";
import type { InsertedRow, NewVersion } from "./versions.ts";

/**
 * Several creates of versions in one transaction (domain/create-batch.ts):
 * the secrets are locked together (lockFreeSecrets, db/secrets.ts), then
 * every version is written by one statement, so that a batch pays one BEGIN,
 * one lock, one write and one COMMIT, however many callers it serves.
 */

/**
 * A batch's transaction: locks the secrets no other transaction holds
 * (lockFreeSecrets), asks `decide` what to write given them, writes it
 * (insertVersionsWithEvents) and commits. On Postgres it runs on one pool
 * connection in two round trips: BEGIN goes out with the lock, and COMMIT
 * with the insert (postgres-js writes what is sent in one tick together, and
 * Postgres answers a COMMIT after a failed statement with a rollback), where
 * drizzle's `transaction` awaits BEGIN, each statement and COMMIT in turn:
 * four. On PGlite, which has no round trips, it is drizzle's transaction.
 * A conflict (deadlock, serialization) is the caller's to retry.
 */
export async function writeVersionBatch(
  db: Db,
  ids: string[],
  decide: (locked: Map<string, SecretRow>) => BatchedVersion[],
): Promise<InsertedRow[]> {
  const client = postgresClientOf(db);
  if (client === undefined) {
    return db.transaction(async (tx) => {
      const writes = decide(await lockFreeSecrets(tx, ids));
      return writes.length === 0 ? [] : insertVersionsWithEvents(tx, writes);
    });
  }
  const conn = await client.reserve();
  let open = false;
  try {
    const begin = conn.unsafe("begin");
    const lock = conn.unsafe(lockFree.statement.sql, [ids], { prepare: true }).values();
    begin.execute();
    lock.execute();
    open = true;
    const [, lockedRows] = await bothSent(begin, lock);
    const locked = lockFree.rows(lockedRows);
    const writes = decide(new Map(locked.map((r) => [r.id, r])));
    if (writes.length === 0) {
      await conn.unsafe("commit");
      open = false;
      return [];
    }
    const insert = conn.unsafe(
      insertStatement.sql,
      // postgres-js types parameters by its own serializers; these are the driver's values.
      fillPlaceholders(insertStatement.params, insertValues(writes)) as never[],
      { prepare: true },
    );
    const commit = conn.unsafe("commit");
    insert.execute();
    commit.execute();
    // Sent together: after a failed insert the COMMIT ends the transaction
    // as a ROLLBACK, and a failed COMMIT ends it too.
    open = false;
    const [inserted] = await bothSent(insert, commit);
    return rowsOf<InsertedRow>(inserted);
  } catch (err) {
    // A lost connection took its transaction with it: a ROLLBACK would only
    // wait to reconnect.
    if (open && !isConnectionLost(err)) await conn.unsafe("rollback").catch(() => {});
    throw err;
  } finally {
    conn.release();
  }
}

/**
 * The results of two statements sent together, once both have settled; the
 * first one's error, if any, else the second's. When the connection is lost
 * both fail, and a rejection left unread would end the process.
 */
async function bothSent<A, B>(first: PromiseLike<A>, second: PromiseLike<B>): Promise<[A, B]> {
  const [a, b] = await Promise.allSettled([first, second]);
  if (a.status === "rejected") throw a.reason;
  if (b.status === "rejected") throw b.reason;
  return [a.value, b.value];
}

/** One version of a batch, and how its call is written. */
export interface BatchedVersion {
  version: NewVersion;
  disablePrevious: boolean;
  audit: StatementAudit | undefined;
  /**
   * Its secret's row as the version was decided on: written only while the
   * row still has this generation (every change to a secret or its versions
   * moves it) and this count of kept versions (which the triggers move alone).
   */
  decidedOn: SecretRow;
}

/**
 * Writes versions, each of a different secret whose row the transaction
 * holds (lockFreeSecrets for a batch, lockSecret for a create alone), in one
 * statement: for each, disables the latest enabled version when asked
 * (before the insert, so that watchers see "disabled" then "created"),
 * inserts it, moves the secret's last revision and etag, and writes the
 * call's audit event. The lock was taken by an earlier statement of the
 * transaction, so this one's snapshot sees every version committed before it
 * was granted, and the quota was checked against the locked row's
 * `kept_versions`. Returns the inserted rows, in no particular order.
 *
 * It also writes what the version triggers would (migration 0013): each
 * secret's kept_versions moves in the same row update as its revision, and
 * the watch events (`version_disabled` for disable_previous, then
 * `version_created`) are inserted here, so that a create updates its
 * secret's row once, not twice, and runs no PL/pgSQL. The setting
 * `coffer.create_writes_own_rows`, made by this statement for its
 * transaction before it changes a version (`own` is joined into both
 * changes), tells those triggers not to fire.
 *
 * The batch arrives as one array per column (unnest), so the statement's
 * text is the same for every batch: rendered once and prepared once per
 * connection, where a VALUES list of the batch's rows had to be rendered by
 * drizzle for every batch, and prepared once per size.
 */
export async function insertVersionsWithEvents(
  ex: Executor,
  batch: BatchedVersion[],
): Promise<InsertedRow[]> {
  return rowsOf<InsertedRow>(
    await executeRendered(ex, insertStatement, "coffer_create_versions", insertValues(batch)),
  );
}

/**
 * Writes versions decided on their secrets' rows as this process last wrote
 * them (domain/create-batch.ts), with no transaction of its own: one
 * statement, which writes a version only while its secret's row is still as
 * it was decided on and no other transaction holds it (the statement's
 * `target`). Returns the rows written. Of a version not among them nothing
 * was written, its audit event included: its caller decides it again under
 * the secret's lock. On Postgres this is one round trip, where the locked
 * path (writeVersionBatch) takes two, and a create alone four.
 */
export async function writeVersionsIfUnchanged(
  db: Db,
  batch: BatchedVersion[],
): Promise<InsertedRow[]> {
  let statement = unlocked.get(db);
  if (statement === undefined) {
    statement = prepareStatement(db, insertStatement, "coffer_create_versions");
    unlocked.set(db, statement);
  }
  return rowsOf<InsertedRow>(await statement.execute(insertValues(batch)));
}

const unlocked = new WeakMap<Db, NamedStatement>();

/** The insert's parameters: one array per column, one element per version. */
function insertValues(batch: BatchedVersion[]): Record<string, unknown> {
  const column = <T>(get: (b: BatchedVersion) => T) => batch.map(get);
  return {
    secretIds: column((b) => b.version.secretId),
    revisions: column((b) => b.version.revision),
    statuses: column((b) => b.version.status),
    descriptions: column((b) => b.version.description),
    crcs: column((b) => b.version.dataCrc32),
    keyIds: column((b) => b.version.keyId),
    ...packed(
      "wrappedKeys",
      column((b) => b.version.wrappedKey),
    ),
    ...packed(
      "ciphertexts",
      column((b) => b.version.ciphertext),
    ),
    ttls: column((b) => b.version.ttlMs),
    once: column((b) => flag(b.version.expiresOnceAccessed)),
    actions: column((b) => b.version.ephemeralAction),
    disablePrevious: column((b) => flag(b.disablePrevious)),
    generations: column((b) => b.decidedOn.generation),
    kept: column((b) => b.decidedOn.keptVersions),
    auditIds: column((b) => b.audit?.id ?? null),
    tokenIds: column((b) => b.audit?.tokenId ?? null),
    methods: column((b) => b.audit?.method ?? null),
    requestIds: column((b) => b.audit?.requestId ?? null),
    peers: column((b) => b.audit?.peer ?? null),
  };
}

/**
 * A boolean (or null) as an element of a text array cast to boolean[]:
 * postgres-js would send an array of JS booleans typed as one boolean.
 */
const flag = (b: boolean | null) => (b === null ? null : b ? "t" : "f");

/**
 * Byte strings of a batch as one bytea parameter (`name`), with each one's
 * place in it (`nameAt`, 1-based, and `nameLength`), which the statement cuts
 * out with substring. An array parameter would be a text array of hex
 * strings (postgres-js types an array of byte arrays as one bytea), which
 * Postgres parses character by character: 17 % of its CPU per create, where
 * one bytea is decoded in one pass.
 */
function packed(name: string, parts: Uint8Array[]): Record<string, unknown> {
  const at: number[] = [];
  const length: number[] = [];
  let offset = 1;
  for (const part of parts) {
    at.push(offset);
    length.push(part.byteLength);
    offset += part.byteLength;
  }
  return { [name]: Buffer.concat(parts), [`${name}At`]: at, [`${name}Length`]: length };
}

const p = (name: string) => sql.placeholder(name);

const insertStatement = render(sql`with input as (
  select i.secret_id, i.revision, i.status, i.description, i.data_crc32, i.key_id,
    substring(${p("wrappedKeys")}::bytea from i.key_at for i.key_length) as wrapped_key,
    substring(${p("ciphertexts")}::bytea from i.data_at for i.data_length) as ciphertext,
    i.ttl_ms, i.once, i.action, i.disable_previous, i.generation, i.kept, i.audit_id,
    i.token_id, i.method, i.request_id, i.peer
  from unnest(
    ${p("secretIds")}::uuid[], ${p("revisions")}::int[], ${p("statuses")}::text[],
    ${p("descriptions")}::text[], ${p("crcs")}::bigint[], ${p("keyIds")}::text[],
    ${p("wrappedKeysAt")}::int[], ${p("wrappedKeysLength")}::int[],
    ${p("ciphertextsAt")}::int[], ${p("ciphertextsLength")}::int[], ${p("ttls")}::bigint[],
    ${p("once")}::text[]::boolean[], ${p("actions")}::text[],
    ${p("disablePrevious")}::text[]::boolean[], ${p("generations")}::bigint[], ${p("kept")}::int[],
    ${p("auditIds")}::uuid[], ${p("tokenIds")}::uuid[],
    ${p("methods")}::text[], ${p("requestIds")}::text[], ${p("peers")}::text[]
  ) as i(secret_id, revision, status, description, data_crc32, key_id, key_at, key_length,
    data_at, data_length, ttl_ms, once, action, disable_previous, generation, kept, audit_id,
    token_id, method, request_id, peer)
),
-- The versions whose secret's row is as they were decided on, locked (a lock
-- this transaction already holds is granted at once; a row another holds is
-- skipped, not waited for). No version committed after this statement's
-- snapshot can be missed: it would have moved its secret's generation.
target as (
  select i.* from input i join secrets s on s.id = i.secret_id
  where s.generation = i.generation and s.kept_versions = i.kept
  for update of s skip locked
),
own as (
  select set_config('coffer.create_writes_own_rows', 'on', true)
),
prev as (
  update secret_versions v set status = 'disabled', updated_at = now()
  from target i, own
  where i.disable_previous and v.secret_id = i.secret_id
    and v.revision = (
      select w.revision from secret_versions w
      where w.secret_id = i.secret_id and ${servableIn("w")}
      order by w.revision desc limit 1)
  returning v.secret_id, v.revision, v.expires_once_accessed
),
ins as (
  insert into secret_versions (secret_id, revision, status, description, data_crc32, key_id,
    wrapped_key, ciphertext, expires_at, expires_once_accessed, ephemeral_action)
  select i.secret_id, i.revision, i.status, i.description, i.data_crc32, i.key_id,
    i.wrapped_key, i.ciphertext, ${expiresIn(sql.raw("i.ttl_ms"))}, i.once, i.action
  from target i, own, (select count(*) from prev) as disabled_first
  returning secret_id, revision, status, description, expires_at::text, expires_once_accessed,
    ephemeral_action, created_at::text, updated_at::text
),
up as (
  update secrets s set last_revision = i.revision, generation = s.generation + 1,
    kept_versions = s.kept_versions + (i.status <> 'deleted')::int, updated_at = now()
  from target i where s.id = i.secret_id
  returning s.id, s.generation, s.kept_versions
),
a as (
  insert into audit_events
    (id, token_id, project_id, method, secret_id, secret_path, secret_name, revision, outcome, request_id, peer)
  select i.audit_id, i.token_id, s.project_id, i.method, s.id, s.path, s.name, i.revision, 'OK',
    i.request_id, i.peer
  from target i join secrets s on s.id = i.secret_id
  where i.audit_id is not null
  returning 1
),
events as (
  insert into watch_events
    (kind, project_id, secret_id, path, name, revision, version_status, single_access)
  select e.kind, s.project_id, s.id, s.path, s.name, e.revision, e.status, e.single_access
  from (
    -- A version disabled by disable_previous was servable, so neither
    -- expired nor consumed: coffer_watch_version calls that "disabled".
    select 1 as phase, 'version_disabled' as kind, prev.secret_id, prev.revision,
      'disabled' as status, coalesce(prev.expires_once_accessed, false) as single_access
    from prev
    union all
    -- Its effective status, as coffer_watch_version writes it: an enabled
    -- version is expired from its start when its time to live is not positive.
    select 2, 'version_created', ins.secret_id, ins.revision,
      case when ins.status = 'enabled' and i.ttl_ms <= 0
        then (case when ins.ephemeral_action = 'delete' then 'deleted' else 'disabled' end)
        else ins.status end,
      coalesce(ins.expires_once_accessed, false)
    from ins join target i on i.secret_id = ins.secret_id
  ) e join secrets s on s.id = e.secret_id
  -- The order the triggers wrote them in: the disabled versions first.
  order by e.phase, e.secret_id
  returning 1
)
-- With the secret's row as the update left it, which the caller remembers.
select ins.*, up.generation::text as secret_generation, up.kept_versions as secret_kept_versions
from ins join up on up.id = ins.secret_id`);
