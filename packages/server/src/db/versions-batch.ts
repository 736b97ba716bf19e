import { fillPlaceholders, sql } from "drizzle-orm";
import type { StatementAudit } from "./audit.ts";
import type { Db, Executor } from "./client.ts";
import { executeRendered, postgresClientOf, render, rowsOf } from "./raw-sql.ts";
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
    await begin;
    const locked = lockFree.rows(await lock);
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
    const [inserted, committed] = await Promise.allSettled([insert, commit]);
    if (inserted.status === "rejected") throw inserted.reason;
    if (committed.status === "rejected") throw committed.reason;
    return rowsOf<InsertedRow>(inserted.value);
  } catch (err) {
    if (open) await conn.unsafe("rollback").catch(() => {});
    throw err;
  } finally {
    conn.release();
  }
}

/** One version of a batch, and how its call is written. */
export interface BatchedVersion {
  version: NewVersion;
  disablePrevious: boolean;
  audit: StatementAudit | undefined;
}

/**
 * Writes a batch of versions, each of a different secret whose row the
 * transaction holds (lockFreeSecrets), in one statement: for each, what
 * insertVersionWithEvent does for one (disable the latest enabled version
 * when asked, insert, move the secret's last revision and etag, and write
 * the call's audit event). Returns the inserted rows,
 * in no particular order.
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
    wrappedKeys: column((b) => byteaText(b.version.wrappedKey)),
    ciphertexts: column((b) => byteaText(b.version.ciphertext)),
    ttls: column((b) => b.version.ttlMs),
    once: column((b) => flag(b.version.expiresOnceAccessed)),
    actions: column((b) => b.version.ephemeralAction),
    disablePrevious: column((b) => flag(b.disablePrevious)),
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
 * bytea as the text Postgres reads it (`\x` and hex), in a text array cast to
 * bytea[]: postgres-js types an array of byte arrays as one bytea.
 */
const byteaText = (bytes: Uint8Array) =>
  `\\x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")}`;

const p = (name: string) => sql.placeholder(name);

const insertStatement = render(sql`with input as (
  select * from unnest(
    ${p("secretIds")}::uuid[], ${p("revisions")}::int[], ${p("statuses")}::text[],
    ${p("descriptions")}::text[], ${p("crcs")}::bigint[], ${p("keyIds")}::text[],
    ${p("wrappedKeys")}::text[]::bytea[], ${p("ciphertexts")}::text[]::bytea[], ${p("ttls")}::bigint[],
    ${p("once")}::text[]::boolean[], ${p("actions")}::text[],
    ${p("disablePrevious")}::text[]::boolean[], ${p("auditIds")}::uuid[], ${p("tokenIds")}::uuid[],
    ${p("methods")}::text[], ${p("requestIds")}::text[], ${p("peers")}::text[]
  ) as i(secret_id, revision, status, description, data_crc32, key_id, wrapped_key, ciphertext,
    ttl_ms, once, action, disable_previous, audit_id, token_id, method, request_id, peer)
),
prev as (
  update secret_versions v set status = 'disabled', updated_at = now()
  from input i
  where i.disable_previous and v.secret_id = i.secret_id
    and v.revision = (
      select w.revision from secret_versions w
      where w.secret_id = i.secret_id and ${servableIn("w")}
      order by w.revision desc limit 1)
  returning v.secret_id
),
ins as (
  insert into secret_versions (secret_id, revision, status, description, data_crc32, key_id,
    wrapped_key, ciphertext, expires_at, expires_once_accessed, ephemeral_action)
  select i.secret_id, i.revision, i.status, i.description, i.data_crc32, i.key_id,
    i.wrapped_key, i.ciphertext, ${expiresIn(sql.raw("i.ttl_ms"))}, i.once, i.action
  from input i, (select count(*) from prev) as disabled_first
  returning secret_id, revision, status, description, expires_at::text, expires_once_accessed,
    ephemeral_action, created_at::text, updated_at::text
),
up as (
  update secrets s set last_revision = i.revision, generation = s.generation + 1, updated_at = now()
  from input i where s.id = i.secret_id
  returning 1
),
a as (
  insert into audit_events
    (id, token_id, project_id, method, secret_id, secret_path, secret_name, revision, outcome, request_id, peer)
  select i.audit_id, i.token_id, s.project_id, i.method, s.id, s.path, s.name, i.revision, 'OK',
    i.request_id, i.peer
  from input i join secrets s on s.id = i.secret_id
  where i.audit_id is not null
  returning 1
)
select ins.* from ins`);
