import { and, eq, getTableColumns, isNotNull, isNull, or, type SQL, sql } from "drizzle-orm";
import type { PgColumn, PgUpdateSetSource } from "drizzle-orm/pg-core";
import type { Executor } from "./client.ts";
import {
  cutPage,
  type KeyKind,
  type KeyValue,
  type PageWindow,
  readPage,
  type SortKey,
} from "./keyset.ts";
import { executeRendered, render, rowsOf } from "./raw-sql.ts";
import { projectSecretCounts, type SecretRow, secrets, secretVersions } from "./schema.ts";
import { effectiveStatus } from "./versions.ts";

/** A secret row with its number of versions whose payload is not destroyed. */
export type SecretView = SecretRow & { versionCount: number };

/** Counted by effective status: an expired `delete` version is as good as destroyed. */
const versionCount =
  sql<number>`(select count(*) from ${secretVersions} where ${secretVersions.secretId} = ${secrets.id} and ${effectiveStatus} <> 'deleted')`
    .mapWith(Number)
    .as("version_count");

const view = { ...getTableColumns(secrets), versionCount };

/** The secret `where` selects (at most one), or undefined. */
async function findView(ex: Executor, where: SQL | undefined): Promise<SecretView | undefined> {
  const [row] = await ex.select(view).from(secrets).where(where);
  return row;
}

/** A secret by id in a region, or undefined. */
export function findSecret(
  ex: Executor,
  region: string,
  id: string,
): Promise<SecretView | undefined> {
  return findView(ex, and(eq(secrets.id, id), eq(secrets.region, region)));
}

/** A live (not scheduled for deletion) secret by its address, or undefined. */
export function findSecretByPath(
  ex: Executor,
  region: string,
  projectId: string,
  path: string,
  name: string,
): Promise<SecretView | undefined> {
  return findView(
    ex,
    and(
      eq(secrets.projectId, projectId),
      eq(secrets.region, region),
      eq(secrets.path, path),
      eq(secrets.name, name),
      isNull(secrets.deletionRequestedAt),
    ),
  );
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

/**
 * Locks, for the rest of the transaction, those of the secrets with these ids
 * that no other transaction holds, and returns them by id. A secret another
 * transaction holds is skipped, not waited for: one busy secret must not hold
 * up every create of a batch (domain/create-batch.ts runs its create on its
 * own). The caller checks the region. One statement, whatever the count,
 * rendered and prepared once as lockSecret's.
 */
export async function lockFreeSecrets(
  ex: Executor,
  ids: string[],
): Promise<Map<string, SecretRow>> {
  const rows = (await executeRendered(
    ex,
    lockFreeStatement,
    "coffer_lock_free_secrets",
    { ids },
    lockFields,
  )) as SecretRow[];
  return new Map(rows.map((r) => [r.id, r]));
}

const lockFreeStatement = render(
  sql`select ${sql.join(
    lockFields.map((f) => sql.identifier(f.field.name)),
    sql`, `,
  )} from ${secrets} where ${secrets.id} = any(${sql.placeholder("ids")}::uuid[]) order by ${secrets.id} for update skip locked`,
);

/**
 * lockFreeSecrets' statement and its rows, for a driver's connection used
 * directly (db/versions-batch.ts): rows as arrays, in lockFields' order,
 * mapped as drizzle maps them.
 */
export const lockFree = {
  statement: lockFreeStatement,
  rows(values: unknown[][]): SecretRow[] {
    return values.map((row) => {
      const out: Record<string, unknown> = {};
      lockFields.forEach((f, i) => {
        const v = row[i];
        out[f.path[0] as string] =
          v === null || v === undefined ? null : f.field.mapFromDriverValue(v);
      });
      return out as SecretRow;
    });
  },
};

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
  const row = await findView(ex, eq(secrets.id, id));
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

/**
 * A project's live (not scheduled for deletion) secrets in a region, inside
 * the caller's scopes: what folders, tags and types are drawn from.
 */
function liveInProject(region: string, projectId: string, scopes: Scope[] | "all"): SQL {
  return sql`(${secrets.region} = ${region} and ${secrets.projectId} = ${projectId} and ${secrets.deletionRequestedAt} is null and ${inScopes(scopes) ?? sql`true`})`;
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

/** A sort key in either direction. */
const sortKey =
  (columns: (PgColumn | SQL)[], kinds: KeyKind[]) =>
  (direction: "asc" | "desc"): SortKey => ({ columns, kinds, direction });
const byName = sortKey([secrets.name, secrets.path, secrets.id], ["text", "text", "uuid"]);
const byCreated = sortKey([secrets.createdAt, secrets.id], ["ts", "uuid"]);
const byUpdated = sortKey([secrets.updatedAt, secrets.id], ["ts", "uuid"]);

/**
 * Each order's sort key: its columns (the id last, as tiebreaker), their SQL
 * kinds, and the direction they all run.
 */
const ORDER: Record<SecretOrder, SortKey> = {
  name_asc: byName("asc"),
  name_desc: byName("desc"),
  created_at_asc: byCreated("asc"),
  created_at_desc: byCreated("desc"),
  updated_at_asc: byUpdated("asc"),
  updated_at_desc: byUpdated("desc"),
};

/** The SQL kinds of an order's sort key, for reading it back from a page token. */
export function secretOrderKinds(order: SecretOrder): KeyKind[] {
  return ORDER[order].kinds;
}

/**
 * One page of secrets, with the total over all pages and, when more rows
 * follow, the sort key of the page's last row.
 */
export async function listSecrets(
  ex: Executor,
  filter: SecretFilter,
  order: SecretOrder,
  page: PageWindow,
): Promise<{ rows: SecretView[]; total: number; more: boolean; next?: KeyValue[] }> {
  return readPage(
    ex,
    { fields: view, table: secrets, where: filterSql(filter), sort: ORDER[order] },
    page,
  );
}

/** The folders directly under `prefix`, with the number of live secrets in and below each. */
export async function listFolders(
  ex: Executor,
  region: string,
  projectId: string,
  prefix: string,
  scopes: Scope[] | "all",
  after?: string,
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
        liveInProject(region, projectId, scopes),
        prefix === "/"
          ? sql`${secrets.path} <> '/'`
          : sql`starts_with(${secrets.path}, ${`${prefix}/`})`,
        after === undefined ? undefined : sql`${folder} > ${after}::text`,
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
  page: PageWindow,
): Promise<{ tags: string[]; total: number; next?: KeyValue[] }> {
  const distinct = sql`
    select distinct unnest(${secrets.tags}) as tag from ${secrets}
    where ${liveInProject(region, projectId, scopes)}`;
  // The total is counted on its own: a window count on the page's rows would
  // say 0 for a page past the end.
  const after = page.after === undefined ? sql`true` : sql`tag > ${page.after[0]}::text`;
  const [rows, counts] = await Promise.all([
    ex.execute(
      sql`select tag from (${distinct}) t where ${after} order by tag offset ${page.offset} limit ${page.limit + 1}`,
    ),
    ex.execute(sql`select count(*)::int as n from (${distinct}) t`),
  ]);
  const cut = cutPage(
    rowsOf<{ tag: string }>(rows).map((r) => r.tag),
    page.limit,
    (tag) => [tag],
  );
  return {
    tags: cut.rows,
    total: Number(rowsOf<{ n: number }>(counts)[0]?.n ?? 0),
    ...(cut.next && { next: cut.next }),
  };
}

/** Distinct types of a project's live secrets. */
export async function listTypes(
  ex: Executor,
  region: string,
  projectId: string,
  scopes: Scope[] | "all",
  after?: string,
): Promise<string[]> {
  const rows = await ex
    .selectDistinct({ type: secrets.type })
    .from(secrets)
    .where(
      and(
        liveInProject(region, projectId, scopes),
        after === undefined ? undefined : sql`${secrets.type} > ${after}::text`,
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

/**
 * The number of a project's live (not scheduled for deletion) secrets in a
 * region, as project_secret_counts keeps it (schema.ts): one row, however
 * many secrets.
 */
export async function countLiveSecrets(
  ex: Executor,
  region: string,
  projectId: string,
): Promise<number> {
  const [row] = await ex
    .select({ live: projectSecretCounts.live })
    .from(projectSecretCounts)
    .where(
      and(eq(projectSecretCounts.projectId, projectId), eq(projectSecretCounts.region, region)),
    );
  return row?.live ?? 0;
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
