import { asc, inArray, sql } from "drizzle-orm";
import type { Executor } from "./client.ts";
import { type ProjectRow, projects } from "./schema.ts";

/** Inserts a project and returns its row (with the database's creation time). */
export async function insertProject(
  ex: Executor,
  project: { id: string; name: string },
): Promise<ProjectRow> {
  const [row] = await ex.insert(projects).values(project).returning();
  if (row === undefined) throw new Error("insert into projects returned no row");
  return row;
}

/** Which of these project ids exist. */
export async function existingProjects(ex: Executor, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await ex
    .select({ id: projects.id })
    .from(projects)
    .where(inArray(projects.id, [...ids]));
  return new Set(rows.map((r) => r.id));
}

/**
 * Projects by name (then id, so pages are stable), with the total; `ids`
 * limits the list to those projects, "all" lists every one.
 */
export async function listProjects(
  ex: Executor,
  ids: readonly string[] | "all",
  page: { offset: number; limit: number },
): Promise<{ rows: ProjectRow[]; total: number }> {
  if (ids !== "all" && ids.length === 0) return { rows: [], total: 0 };
  const where = ids === "all" ? undefined : inArray(projects.id, [...ids]);
  const [rows, [count]] = await Promise.all([
    ex
      .select()
      .from(projects)
      .where(where)
      .orderBy(asc(projects.name), asc(projects.id))
      .offset(page.offset)
      .limit(page.limit),
    ex
      .select({ n: sql<number>`count(*)`.mapWith(Number) })
      .from(projects)
      .where(where),
  ]);
  return { rows, total: count?.n ?? 0 };
}
