import {
  and,
  asc,
  desc,
  eq,
  getTableColumns,
  isNotNull,
  isNull,
  or,
  type SQL,
  sql,
} from "drizzle-orm";
import type { PgColumn, PgUpdateSetSource } from "drizzle-orm/pg-core";
import { executeRendered, render } from "./access.ts";
import type { Executor } from "./client.ts";
import { rowsOf } from "./migrate.ts";
import { type SecretRow, secrets, secretVersions } from "./schema.ts";

/** A secret row with its number of versions whose payload is not destroyed. */
export type SecretView = SecretRow & { versionCount: number };

const versionCount =
  sql<number>`(select count(*) from ${secretVersions} where ${secretVersions.secretId} = ${secrets.id} and ${secretVersions.status} <> 'deleted')`
    .mapWith(Number)
    .as("version_count");

const view = { ...getTableColumns(secrets), versionCount };

/** A secret by id in a region, or undefined. */
export async function findSecret(
  ex: Executor,
  region: string,
  id: string,
): Promise<SecretView | undefined> {
  const [row] = await ex
    .select(view)
    .from(secrets)
    .where(and(eq(secrets.id, id), eq(secrets.region, region)));
  return row;
}

/** A live (not scheduled for deletion) secret by its address, or undefined. */
export async function findSecretByPath(
  ex: Executor,
  region: string,
  projectId: string,
  path: string,
  name: string,
): Promise<SecretView | undefined> {
  const [row] = await ex
    .select(view)
    .from(secrets)
    .where(
      and(
        eq(secrets.projectId, projectId),
        eq(secrets.region, region),
        eq(secrets.path, path),
        eq(secrets.name, name),
        isNull(secrets.deletionRequestedAt),
      ),
    );
  return row;
}

/**
 * Locks a secret row for the rest of the transaction: every change to a
 * secret or its versions goes through this lock, so etag checks, revision
 * numbering and "latest enabled" decisions cannot race.
 */
export async function lockSecret(
  ex: Executor,
  region: string,
  id: string,
): Promise<SecretRow | undefined> {
  const rows = await executeRendered(
    ex,
    lockStatement,
    "coffer_lock_secret",
    { id, region },
    lockFields,
  );
  return (rows as SecretRow[])[0];
}

/**
 * lockSecret's statement, rendered once: every write path takes it, and
 * drizzle's builder would rebuild it on each call. drizzle maps its rows
 * (lockFields) exactly as `select().from(secrets)` would.
 */
const lockFields = Object.entries(getTableColumns(secrets)).map(([key, field]) => ({
  path: [key],
  field: field as PgColumn,
}));
const lockStatement = render(
  sql`select ${sql.join(
    lockFields.map((f) => sql.identifier(f.field.name)),
    sql`, `,
  )} from ${secrets} where ${secrets.id} = ${sql.placeholder("id")}::uuid and ${secrets.region} = ${sql.placeholder("region")}::text for update`,
);

/** Applies a change to a secret and bumps its generation (its etag). */
export async function updateSecret(
  ex: Executor,
  id: string,
  set: PgUpdateSetSource<typeof secrets>,
): Promise<void> {
  await ex
    .update(secrets)
    .set({ ...set, generation: sql`${secrets.generation} + 1`, updatedAt: sql`now()` })
    .where(eq(secrets.id, id));
}

/** Re-reads a secret with its version count, after a change in this transaction. */
export async function getSecretView(ex: Executor, id: string): Promise<SecretView> {
  const [row] = await ex.select(view).from(secrets).where(eq(secrets.id, id));
  if (row === undefined) throw new Error(`secret ${id} vanished inside its transaction`);
  return row;
}

/** Where a caller may look: a project and a folder in it. */
export interface Scope {
  projectId: string;
  pathPrefix: string;
}

export interface SecretFilter {
  region: string;
  /** The caller's visible scopes; "all" for a global admin. An empty list matches nothing. */
  scopes: Scope[] | "all";
  projectId?: string;
  name?: string;
  path?: string;
  pathPrefix?: string;
  tags: string[];
  type?: string;
  ephemeral?: boolean;
  protected?: boolean;
  scheduledForDeletion: boolean;
}

export type SecretOrder =
  | "name_asc"
  | "name_desc"
  | "created_at_asc"
  | "created_at_desc"
  | "updated_at_asc"
  | "updated_at_desc";

/** A path and everything below it. */
export function underPath(prefix: string): SQL {
  if (prefix === "/") return sql`true`;
  return sql`(${secrets.path} = ${prefix} or starts_with(${secrets.path}, ${`${prefix}/`}))`;
}

/** Secrets inside any of the scopes. */
export function inScopes(scopes: Scope[] | "all"): SQL | undefined {
  if (scopes === "all") return undefined;
  if (scopes.length === 0) return sql`false`;
  return or(...scopes.map((s) => and(eq(secrets.projectId, s.projectId), underPath(s.pathPrefix))));
}

function filterSql(f: SecretFilter): SQL | undefined {
  const conds: (SQL | undefined)[] = [
    eq(secrets.region, f.region),
    inScopes(f.scopes),
    f.projectId === undefined ? undefined : eq(secrets.projectId, f.projectId),
    f.name === undefined ? undefined : eq(secrets.name, f.name),
    f.path === undefined ? undefined : eq(secrets.path, f.path),
    f.pathPrefix === undefined ? undefined : underPath(f.pathPrefix),
    f.tags.length === 0 ? undefined : sql`${secrets.tags} @> ${sql.param(f.tags, secrets.tags)}`,
    f.type === undefined ? undefined : eq(secrets.type, f.type),
    f.ephemeral === undefined
      ? undefined
      : f.ephemeral
        ? isNotNull(secrets.ephemeralAction)
        : isNull(secrets.ephemeralAction),
    f.protected === undefined ? undefined : eq(secrets.protected, f.protected),
    f.scheduledForDeletion
      ? isNotNull(secrets.deletionRequestedAt)
      : isNull(secrets.deletionRequestedAt),
  ];
  return and(...conds);
}

const ORDER: Record<SecretOrder, SQL[]> = {
  name_asc: [asc(secrets.name), asc(secrets.path), asc(secrets.id)],
  name_desc: [desc(secrets.name), desc(secrets.path), desc(secrets.id)],
  created_at_asc: [asc(secrets.createdAt), asc(secrets.id)],
  created_at_desc: [desc(secrets.createdAt), desc(secrets.id)],
  updated_at_asc: [asc(secrets.updatedAt), asc(secrets.id)],
  updated_at_desc: [desc(secrets.updatedAt), desc(secrets.id)],
};

export async function listSecrets(
  ex: Executor,
  filter: SecretFilter,
  order: SecretOrder,
  page: { offset: number; limit: number },
): Promise<{ rows: SecretView[]; total: number }> {
  const where = filterSql(filter);
  const [rows, [count]] = await Promise.all([
    ex
      .select(view)
      .from(secrets)
      .where(where)
      .orderBy(...ORDER[order])
      .offset(page.offset)
      .limit(page.limit),
    ex
      .select({ n: sql<number>`count(*)`.mapWith(Number) })
      .from(secrets)
      .where(where),
  ]);
  return { rows, total: count?.n ?? 0 };
}

/** The folders directly under `prefix`, with the number of live secrets in and below each. */
export async function listFolders(
  ex: Executor,
  region: string,
  projectId: string,
  prefix: string,
  scopes: Scope[] | "all",
): Promise<{ name: string; count: number }[]> {
  const start = prefix === "/" ? 2 : prefix.length + 2;
  // The offset is inlined, not bound: a bound parameter would appear as $1 in
  // the select list and $4 in GROUP BY, and Postgres would then refuse the
  // select list as not grouped. It is an integer computed here, never input.
  const folder = sql<string>`split_part(substr(${secrets.path}, ${sql.raw(String(start))}), '/', 1)`;
  const rows = await ex
    .select({ name: folder, count: sql<number>`count(*)`.mapWith(Number) })
    .from(secrets)
    .where(
      and(
        eq(secrets.region, region),
        eq(secrets.projectId, projectId),
        isNull(secrets.deletionRequestedAt),
        inScopes(scopes),
        prefix === "/"
          ? sql`${secrets.path} <> '/'`
          : sql`starts_with(${secrets.path}, ${`${prefix}/`})`,
      ),
    )
    .groupBy(folder)
    .orderBy(folder);
  return rows;
}

/** Distinct tags of a project's live secrets, sorted. */
export async function listTags(
  ex: Executor,
  region: string,
  projectId: string,
  scopes: Scope[] | "all",
  page: { offset: number; limit: number },
): Promise<{ tags: string[]; total: number }> {
  const distinct = sql`
    select distinct unnest(${secrets.tags}) as tag from ${secrets}
    where ${secrets.region} = ${region} and ${secrets.projectId} = ${projectId}
      and ${secrets.deletionRequestedAt} is null and ${inScopes(scopes) ?? sql`true`}`;
  // The total is counted on its own: a window count on the page's rows would
  // say 0 for a page past the end.
  const [rows, counts] = await Promise.all([
    ex.execute(
      sql`select tag from (${distinct}) t order by tag offset ${page.offset} limit ${page.limit}`,
    ),
    ex.execute(sql`select count(*)::int as n from (${distinct}) t`),
  ]);
  return {
    tags: rowsOf<{ tag: string }>(rows).map((r) => r.tag),
    total: Number(rowsOf<{ n: number }>(counts)[0]?.n ?? 0),
  };
}

/** Distinct types of a project's live secrets. */
export async function listTypes(
  ex: Executor,
  region: string,
  projectId: string,
  scopes: Scope[] | "all",
): Promise<string[]> {
  const rows = await ex
    .selectDistinct({ type: secrets.type })
    .from(secrets)
    .where(
      and(
        eq(secrets.region, region),
        eq(secrets.projectId, projectId),
        isNull(secrets.deletionRequestedAt),
        inScopes(scopes),
      ),
    )
    .orderBy(secrets.type);
  return rows.map((r) => r.type);
}

/** An arbitrary int4: the namespace of the per-project lock that serializes secret creation. */
const PROJECT_SECRETS_LOCK = 0x636f6601;

/**
 * Holds, until the transaction ends, a lock that every creation (or restore)
 * of a secret in this project takes first, so that counting the project's
 * secrets and adding one cannot interleave with another transaction doing
 * the same. Two projects whose ids hash alike only share a lock: slower,
 * never wrong.
 */
export async function lockProjectSecrets(ex: Executor, projectId: string): Promise<void> {
  await ex.execute(
    sql`select pg_advisory_xact_lock(${PROJECT_SECRETS_LOCK}, hashtext(${projectId}))`,
  );
}

/** The number of a project's live (not scheduled for deletion) secrets in a region. */
export async function countLiveSecrets(
  ex: Executor,
  region: string,
  projectId: string,
): Promise<number> {
  const [row] = await ex
    .select({ n: sql<number>`count(*)`.mapWith(Number) })
    .from(secrets)
    .where(
      and(
        eq(secrets.projectId, projectId),
        eq(secrets.region, region),
        isNull(secrets.deletionRequestedAt),
      ),
    );
  return row?.n ?? 0;
}

/** A project's secrets in a region: live, and scheduled for deletion. */
export async function countProjectSecrets(
  ex: Executor,
  region: string,
  projectId: string,
): Promise<{ live: number; scheduled: number }> {
  const [row] = await ex
    .select({
      live: sql<number>`count(*) filter (where ${secrets.deletionRequestedAt} is null)`.mapWith(
        Number,
      ),
      scheduled:
        sql<number>`count(*) filter (where ${secrets.deletionRequestedAt} is not null)`.mapWith(
          Number,
        ),
    })
    .from(secrets)
    .where(and(eq(secrets.projectId, projectId), eq(secrets.region, region)));
  return { live: row?.live ?? 0, scheduled: row?.scheduled ?? 0 };
}

/**
 * Destroys every secret of a project in a region, for good: rows, versions
 * (cascade) and ciphertexts. The watch triggers write one event per secret.
 * @returns how many secrets were destroyed.
 */
export async function destroyProjectSecrets(
  ex: Executor,
  region: string,
  projectId: string,
): Promise<number> {
  const rows = await ex
    .delete(secrets)
    .where(and(eq(secrets.projectId, projectId), eq(secrets.region, region)))
    .returning({ id: secrets.id });
  return rows.length;
}
