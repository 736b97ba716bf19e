import { randomUUID } from "node:crypto";
import { insertProject, listProjects as queryProjects } from "../../db/projects.ts";
import type { ProjectRow } from "../../db/schema.ts";
import { inTransaction } from "../../db/tx.ts";
import { recordInTransaction } from "../audit.ts";
import { requireGlobalAdmin, requirePrincipal } from "../authz.ts";
import type { Caller, Domain } from "../context.ts";
import { validatePage } from "../validation.ts";
import { home, requireAdmin, validateLabel } from "./access.ts";

/** Creates a project (global admins only). Names need not be unique: the id is the project. */
export async function createProject(
  domain: Domain,
  caller: Caller,
  input: { name: string },
): Promise<ProjectRow> {
  const region = home(domain, caller);
  requireGlobalAdmin(requirePrincipal(caller.principal));
  const name = validateLabel(input.name);
  const id = randomUUID();
  return inTransaction(region.db, async (tx) => {
    const project = await insertProject(tx, { id, name });
    await recordInTransaction(tx, caller.audit, { projectId: id });
    return project;
  });
}

/**
 * The projects the caller administers, by name: every project for a global
 * admin. Projects named in grants but never created are not listed.
 */
export async function listProjects(
  domain: Domain,
  caller: Caller,
  input: { page: number; pageSize: number },
): Promise<{ projects: ProjectRow[]; totalCount: number }> {
  const region = home(domain, caller);
  const administered = requireAdmin(caller.principal);
  const page = validatePage(input.page, input.pageSize);
  const { rows, total } = await queryProjects(
    region.db,
    administered === "all" ? "all" : [...administered],
    page,
  );
  return { projects: rows, totalCount: total };
}
