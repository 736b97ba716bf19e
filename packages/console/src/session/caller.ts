import { AdminService, type GetCallerResponse, type Grant, Role } from "@coffer/api";
import { useQuery } from "@connectrpc/connect-query";

/** The signed-in token's own description (grants, projects), read once per session. */
export function useCaller() {
  return useQuery(AdminService.method.getCaller, {}, { staleTime: Number.POSITIVE_INFINITY });
}

function covers(grant: Grant, projectId: string, path?: string): boolean {
  if (grant.projectId !== "" && grant.projectId !== projectId) return false;
  if (path === undefined) return true;
  const prefix = grant.pathPrefix === "" ? "/" : grant.pathPrefix;
  return prefix === "/" || path === prefix || path.startsWith(`${prefix}/`);
}

/** Whether the caller administers the project (or everything: a global admin). */
export function isAdmin(caller: GetCallerResponse | undefined, projectId?: string): boolean {
  const grants = caller?.token?.grants ?? [];
  return grants.some(
    (g) => g.role === Role.ADMIN && (projectId === undefined || covers(g, projectId)),
  );
}

/** Whether the caller holds a global admin grant (creates projects). */
export function isGlobalAdmin(caller: GetCallerResponse | undefined): boolean {
  return (caller?.token?.grants ?? []).some((g) => g.role === Role.ADMIN && g.projectId === "");
}

const PAYLOAD_ROLES = new Set([Role.ADMIN, Role.FULL_ACCESS, Role.SECRET_ACCESS]);
const WRITE_ROLES = new Set([Role.ADMIN, Role.FULL_ACCESS, Role.SECRET_WRITE]);

/**
 * Whether the caller may read payloads in this project and folder: admin,
 * full_access and secret_access may; read_only and secret_write may not,
 * and see no Reveal or Copy at all.
 */
export function canReadPayload(
  caller: GetCallerResponse | undefined,
  projectId: string,
  path: string,
): boolean {
  return (caller?.token?.grants ?? []).some(
    (g) => PAYLOAD_ROLES.has(g.role) && covers(g, projectId, path),
  );
}

/** Whether the caller may change secrets and versions in this project and folder. */
export function canWrite(
  caller: GetCallerResponse | undefined,
  projectId: string,
  path?: string,
): boolean {
  return (caller?.token?.grants ?? []).some(
    (g) => WRITE_ROLES.has(g.role) && covers(g, projectId, path),
  );
}
