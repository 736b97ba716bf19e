import { eq, getTableColumns, inArray, sql } from "drizzle-orm";
import type { Executor } from "./client.ts";
import { type KeyValue, type PageWindow, readPage } from "./keyset.ts";
import { rowsOf } from "./raw-sql.ts";
import { type ProjectRow, projects, tokens } from "./schema.ts";

/** Inserts a project and returns its row (with the database's creation time). */
export async function insertProject(
  ex: Executor,
  project: { id: string; name: string },
): Promise<ProjectRow> {
  const [row] = await ex.insert(projects).values(project).returning();
  if (row === undefined) throw new Error("insert into projects returned no row");
  return row;
}

/**
 * Which of these project ids exist. The rows found stay share-locked until
 * the transaction ends, so a project delete waits for (and then removes)
 * a grant being written on it.
 */
export async function existingProjects(ex: Executor, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await ex
    .select({ id: projects.id })
    .from(projects)
    .where(inArray(projects.id, [...ids]))
    .for("share");
  return new Set(rows.map((r) => r.id));
}

/**
 * Projects by name (then id, so pages are stable), with the total; `ids`
 * limits the list to those projects, "all" lists every one.
 */
export async function listProjects(
  ex: Executor,
  ids: readonly string[] | "all",
  page: PageWindow,
): Promise<{ rows: ProjectRow[]; total: number; next?: KeyValue[] }> {
  if (ids !== "all" && ids.length === 0) return { rows: [], total: 0 };
  const where = ids === "all" ? undefined : inArray(projects.id, [...ids]);
  return readPage(
    ex,
    {
      fields: getTableColumns(projects),
      table: projects,
      where,
      sort: { columns: [projects.name, projects.id], kinds: ["text", "uuid"], direction: "asc" },
    },
    page,
  );
}

/** The projects with these ids that exist, by name (then id). */
export async function findProjects(ex: Executor, ids: readonly string[]): Promise<ProjectRow[]> {
  if (ids.length === 0) return [];
  return ex
    .select()
    .from(projects)
    .where(inArray(projects.id, [...ids]))
    .orderBy(projects.name, projects.id);
}

/**
 * Checks, inside a transaction on the home database, that a project exists,
 * and holds a share lock on its row until the transaction ends: a project
 * delete (which locks the row for update) waits for every secret creation
 * that saw the project, and a creation that comes later sees it gone.
 */
export async function lockProjectShared(ex: Executor, id: string): Promise<boolean> {
  const rows = await ex.execute(
    sql`select 1 from ${projects} where ${projects.id} = ${id} for share`,
  );
  return rowsOf(rows).length > 0;
}

/** Locks a project's row for a rename or a delete; undefined when there is none. */
export async function lockProject(ex: Executor, id: string): Promise<ProjectRow | undefined> {
  const [row] = await ex.select().from(projects).where(eq(projects.id, id)).for("update");
  return row;
}

/** Renames a project; a name in use fails with 23505 (projects_name_key). */
export async function renameProject(
  ex: Executor,
  id: string,
  name: string,
): Promise<ProjectRow | undefined> {
  const [row] = await ex.update(projects).set({ name }).where(eq(projects.id, id)).returning();
  return row;
}

export async function deleteProjectRow(ex: Executor, id: string): Promise<void> {
  await ex.delete(projects).where(eq(projects.id, id));
}

/**
 * Removes every grant on a project from every token. A token left with no
 * grant at all is revoked as well (it could do nothing, and a listing should
 * not show it as active).
 * @returns the ids of the tokens changed.
 */
export async function removeProjectGrants(
  ex: Executor,
  projectId: string,
): Promise<{ id: string; revoked: boolean }[]> {
  const rows = await ex.execute(sql`
    update ${tokens} set
      grants = coalesce(
        (select jsonb_agg(g) from jsonb_array_elements(${tokens.grants}) g where g->>'projectId' <> ${projectId}),
        '[]'::jsonb),
      revoked_at = case
        when exists (select 1 from jsonb_array_elements(${tokens.grants}) g where g->>'projectId' <> ${projectId})
        then ${tokens.revokedAt} else coalesce(${tokens.revokedAt}, now()) end
    where ${tokens.grants} @> jsonb_build_array(jsonb_build_object('projectId', ${projectId}::text))
    returning ${tokens.id} as id, ${tokens.revokedAt} is not null as revoked`);
  return rowsOf<{ id: string; revoked: boolean }>(rows);
}
