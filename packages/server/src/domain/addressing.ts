import type { Db } from "../db/client.ts";
import type { Caller } from "./caller.ts";
import type { DomainDeps, RegionDb } from "./context.ts";
import { validateUuid } from "./validation.ts";

/**
 * What a call addresses: the region a request names, which is also where the
 * call's audit event goes, and the secret or project in it.
 */

/**
 * Resolves the region a request names (empty: the default region) and makes
 * it the home of the call's audit event.
 */
export function resolveAndNoteRegion(
  domain: Pick<DomainDeps, "regions">,
  caller: Caller,
  name: string,
): RegionDb {
  const region = domain.regions.resolve(name);
  if (caller.audit) caller.audit.region = region.name;
  return region;
}

/**
 * The home region: projects, tokens and the audit events of admin calls live
 * in the default region's database. Points the call's audit event there.
 */
export function resolveAndNoteHome(domain: Pick<DomainDeps, "regions">, caller: Caller): RegionDb {
  return resolveAndNoteRegion(domain, caller, "");
}

/** The id fields a request can address, and their names in the proto. */
const ID_FIELDS = { secretId: "secret_id", projectId: "project_id" } as const;

/**
 * A request's secret or project: its region (resolveAndNoteRegion), then its
 * id, validated.
 */
export function resolveAddress<F extends keyof typeof ID_FIELDS>(
  domain: Pick<DomainDeps, "regions">,
  caller: Caller,
  input: { region: string } & Record<F, string>,
  idField: F,
): { region: { name: string; db: Db }; id: string } {
  const region = resolveAndNoteRegion(domain, caller, input.region);
  return { region, id: validateUuid(input[idField], ID_FIELDS[idField]) };
}

/**
 * The project a project-wide read names (browse, tags, types), or, when it
 * names none, the one project the caller's grants name: a token made for one
 * project need not repeat it (Scaleway's SDK sends no project when it
 * browses). A caller with grants on several projects, or on every project (a
 * global admin), must name it, and is refused naming `project_id`.
 */
export function namedOrOnlyProject(caller: Caller, projectId: string): string {
  if (projectId !== "") return projectId;
  const grants = caller.principal?.grants ?? [];
  const projects = new Set(grants.map((g) => g.projectId));
  const [only] = projects;
  return projects.size === 1 && only !== undefined ? only : "";
}
