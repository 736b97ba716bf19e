import { type SQL, sql } from "drizzle-orm";
import { okEventInsert, type StatementAudit, statementAuditValues } from "./audit.ts";
import type { Db } from "./client.ts";
import type { NamedStatement } from "./pglite-statements.ts";
import { prepareStatement, render, takeRows } from "./raw-sql.ts";
import { retryingConflicts } from "./tx.ts";
import { ephemeralActionSet, servableIn } from "./version-rules.ts";

/** Where the secret is: by id, or by its live address. */
export type SecretLookup =
  | { by: "id"; region: string; secretId: string }
  | { by: "path"; region: string; projectId: string; path: string; name: string };

/** What one access asks of the database. */
export interface AccessParams {
  lookup: SecretLookup;
  /**
   * Revisions between `lo` and `hi` (inclusive), the highest first: a number
   * n is [n, n]; `latest` and `latest_enabled` are the whole range.
   */
  lo: number;
  hi: number;
  /** `latest_enabled`: only a servable version qualifies. */
  enabledOnly: boolean;
  /** Where the caller may read payloads: "all" for a global admin. */
  scopes: { projects: string[]; prefixes: string[] } | "all";
  noConsume: boolean;
  /**
   * Ids of the master keys this replica holds: a version under another key
   * is never consumed. One batch serves calls with the same ids only.
   */
  keyIds: string[];
  /** The call's audit event, written by the statement when it serves; absent: none is written. */
  audit?: StatementAudit;
}

/** What the statement found, and what it did. */
export interface AccessRow {
  secretId: string;
  projectId: string;
  path: string;
  name: string;
  type: string;
  deleting: boolean;
  allowed: boolean;
  /** Undefined when no version matched (or the caller was refused before looking). */
  version?: {
    revision: number;
    servable: boolean;
    singleAccess: boolean;
    dataCrc32: number;
    keyId: string | null;
    /** Present only when the payload is to be decrypted, or its key is missing here. */
    wrappedKey: Uint8Array | null;
    ciphertext: Uint8Array | null;
  };
  /** The version is served: consumed (single access), or readable, and its audit event written. */
  served: boolean;
  /**
   * When this statement consumed the version: its `consumed_at`, as text
   * (exact to the microsecond, unlike a Date), for unconsumeVersion.
   */
  consumedAt: string | null;
}

const servableV = servableIn("sv");

/**
 * The access in one statement (one round trip): find the secret, check the
 * caller's grants, pick the version, consume it when it is single-access,
 * bump the secret's generation (its etag), and write the call's audit event.
 * Each write happens only when the caller is allowed and the version is
 * servable, so a refused call changes nothing and the application explains
 * it afterwards with extra queries (the failure path only).
 *
 * Concurrency is decided by the UPDATE: it re-checks `consumed_at is null`
 * and servability on the row it locks (Postgres re-evaluates the WHERE
 * clause on the newest row version after a concurrent commit), so of any
 * number of concurrent consumers, on any number of replicas, exactly one
 * gets a row back. The payload returned is the one the statement's snapshot
 * read (`v`); the consumption may destroy it in the same statement.
 *
 * `v` is referenced several times, so Postgres materializes it once: every
 * part of the statement agrees on the version.
 */
function accessStatement(lookup: SQL): SQL {
  const p = (name: string) => sql.placeholder(name);
  return sql`with s as (
  select id, project_id, path, name, type, deletion_requested_at is not null as deleting,
    (${p("all")}::boolean or exists (
      select 1 from unnest(${p("projects")}::text[], ${p("prefixes")}::text[]) as g(project, prefix)
      where g.project = secrets.project_id::text
        and (g.prefix = '/' or secrets.path = g.prefix or starts_with(secrets.path, g.prefix || '/'))
    )) as allowed
  from secrets where ${lookup}
),
v as (
  select sv.secret_id, sv.revision, coalesce(sv.expires_once_accessed, false) as once,
    sv.data_crc32, sv.key_id, sv.wrapped_key, sv.ciphertext, ${servableV} as servable,
    sv.key_id = any(${p("keyIds")}::text[]) as key_held
  from s join secret_versions sv on sv.secret_id = s.id
  where s.allowed and not s.deleting
    and sv.revision between ${p("lo")}::int and ${p("hi")}::int
    and (not ${p("enabledOnly")}::boolean or ${servableV})
  order by sv.revision desc limit 1
),
c as (
  update secret_versions t set
    ${ephemeralActionSet("t")},
    consumed_at = now(),
    updated_at = now()
  from v
  where t.secret_id = v.secret_id and t.revision = v.revision
    and v.servable and v.once and v.key_held and not ${p("noConsume")}::boolean
    and t.expires_once_accessed = true and ${servableIn("t")}
  returning t.secret_id, t.consumed_at
),
b as (
  update secrets set generation = generation + 1, updated_at = now()
  where id = (select secret_id from c)
  returning 1
),
ok as (
  select (not v.once or not ${p("noConsume")}::boolean) as reveal from v
  where v.servable
    and case when v.once
      then ${p("noConsume")}::boolean or exists (select 1 from c)
      else v.key_held end
),
a as (
  ${okEventInsert("s", sql`v.revision`, sql`s, v`, sql`exists (select 1 from ok)`)}
)
select s.id as secret_id, s.project_id, s.path, s.name, s.type, s.deleting, s.allowed,
  v.revision, v.servable, v.once, v.data_crc32::text as data_crc32, v.key_id,
  case when coalesce((select reveal from ok), v.servable and not v.key_held) then v.wrapped_key end as wrapped_key,
  case when coalesce((select reveal from ok), v.servable and not v.key_held) then v.ciphertext end as ciphertext,
  exists (select 1 from ok) as served,
  (select consumed_at::text from c) as consumed_at
from s left join v on true`;
}

const byId = accessStatement(
  sql`id = ${sql.placeholder("secretId")}::uuid and region = ${sql.placeholder("region")}::text`,
);
const byPath = accessStatement(
  sql`project_id = ${sql.placeholder("projectId")}::uuid and region = ${sql.placeholder("region")}::text
    and path = ${sql.placeholder("path")}::text and name = ${sql.placeholder("name")}::text
    and deletion_requested_at is null`,
);

/**
 * The statements, rendered to SQL text once and prepared once per database
 * (prepareStatement: postgres-js keeps a named server-side statement per
 * connection, pgliteStatement one per embedded database, so Postgres parses
 * it once). drizzle's `db.execute` would render the
 * template on every call and send an unnamed statement that Postgres parses
 * every time.
 */
const rendered = { id: render(byId), path: render(byPath) };
const prepared = new WeakMap<Db, { id: NamedStatement; path: NamedStatement }>();

function statementsFor(db: Db): { id: NamedStatement; path: NamedStatement } {
  let found = prepared.get(db);
  if (found === undefined) {
    found = {
      id: prepareStatement(db, rendered.id, "coffer_access_by_id"),
      path: prepareStatement(db, rendered.path, "coffer_access_by_path"),
    };
    prepared.set(db, found);
  }
  return found;
}

/** A row of an access statement, single or batched (db/access-batch.ts). */
export interface RawAccessRow {
  secret_id: string;
  project_id: string;
  path: string;
  name: string;
  type: string;
  deleting: boolean;
  allowed: boolean;
  revision: number | null;
  servable: boolean | null;
  once: boolean | null;
  data_crc32: string | null;
  key_id: string | null;
  wrapped_key: Uint8Array | null;
  ciphertext: Uint8Array | null;
  served: boolean;
  consumed_at: string | null;
}

/**
 * Runs the access statement for one call (a batch of one: see
 * db/access-queue.ts); undefined when the secret does not exist (in
 * that region, or at that address). A deadlock (a consumption meeting a
 * version change of the same secret) is retried by retryingConflicts, the
 * loop inTransaction uses.
 */
export async function accessInOneStatement(
  db: Db,
  params: AccessParams,
): Promise<AccessRow | undefined> {
  const { lookup, scopes, audit } = params;
  const statements = statementsFor(db);
  const values = {
    region: lookup.region,
    secretId: lookup.by === "id" ? lookup.secretId : null,
    projectId: lookup.by === "path" ? lookup.projectId : null,
    path: lookup.by === "path" ? lookup.path : null,
    name: lookup.by === "path" ? lookup.name : null,
    all: scopes === "all",
    projects: scopes === "all" ? [] : scopes.projects,
    prefixes: scopes === "all" ? [] : scopes.prefixes,
    lo: params.lo,
    hi: params.hi,
    enabledOnly: params.enabledOnly,
    noConsume: params.noConsume,
    keyIds: params.keyIds,
    ...statementAuditValues(audit),
  };
  const statement = lookup.by === "id" ? statements.id : statements.path;
  const [row] = takeRows(await retryingConflicts(() => statement.execute(values)), toAccessRow);
  return row;
}

export function toAccessRow(r: RawAccessRow): AccessRow {
  return {
    secretId: r.secret_id,
    projectId: r.project_id,
    path: r.path,
    name: r.name,
    type: r.type,
    deleting: r.deleting,
    allowed: r.allowed,
    ...(r.revision !== null && {
      version: {
        revision: r.revision,
        servable: r.servable === true,
        singleAccess: r.once === true,
        dataCrc32: Number(r.data_crc32),
        keyId: r.key_id,
        wrappedKey: r.wrapped_key,
        ciphertext: r.ciphertext,
      },
    }),
    served: r.served,
    consumedAt: r.consumed_at,
  };
}
