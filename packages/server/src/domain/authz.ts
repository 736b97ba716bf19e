import type { SecretRow, StoredGrant } from "../db/schema.ts";
import type { Scope } from "../db/secrets.ts";
import { noteFacts, secretFacts } from "./audit.ts";
import type { Caller, Grant, Principal, Role } from "./caller.ts";
import { notFound, permissionDenied, unauthenticated } from "./errors.ts";

/** What a call needs to be allowed to do. */
export type Permission =
  /** Read secrets' and versions' metadata (never payloads). */
  | "read"
  /** Create, change and delete secrets and versions. */
  | "write"
  /** Read payloads. */
  | "access"
  /** Manage a project's tokens and read its audit trail. */
  | "admin";

/**
 * Least privilege: each role holds only what its name says. `secret_access`
 * reads payloads and nothing else (a sidecar addresses secrets by path), and
 * `read_only` never reads a payload.
 */
const PERMISSIONS: Record<Role, ReadonlySet<Permission>> = {
  admin: new Set(["read", "write", "access", "admin"]),
  full_access: new Set(["read", "write", "access"]),
  secret_write: new Set(["read", "write"]),
  read_only: new Set(["read"]),
  secret_access: new Set(["access"]),
};

export function isRole(value: string): value is Role {
  return Object.hasOwn(PERMISSIONS, value);
}

/** The roles, for messages. */
export const ROLE_NAMES = Object.keys(PERMISSIONS).join(", ");

export type { Scope };

export function isUnder(path: string, prefix: string): boolean {
  return prefix === "/" || path === prefix || path.startsWith(`${prefix}/`);
}

export function isGlobalAdmin(principal: Principal): boolean {
  return principal.grants.some((g) => g.projectId === "" && g.role === "admin");
}

/** Whether the principal holds any grant on the project (so may learn that it exists). */
export function projectReadable(principal: Principal, projectId: string): boolean {
  return grantsOn(principal, projectId).length > 0;
}

/** Grants that apply to a project: its own, and a global admin's. */
function grantsOn(principal: Principal, projectId: string): Grant[] {
  return principal.grants.filter(
    (g) => g.projectId === projectId || (g.projectId === "" && g.role === "admin"),
  );
}

export function requirePrincipal(principal: Principal | undefined): Principal {
  if (principal === undefined) {
    throw unauthenticated('a valid token is required: send "authorization: Bearer <token>"');
  }
  return principal;
}

/**
 * Checks that the principal may do `permission` on a secret at (project,
 * path). A principal that can see nothing there gets the same NOT_FOUND as
 * for a secret that does not exist (`hidden` builds it), so grants never
 * reveal what lies outside them; one that can see it but lacks the
 * permission gets PERMISSION_DENIED.
 */
export function authorize(
  principal: Principal,
  projectId: string,
  path: string,
  permission: Permission,
  hidden: () => Error,
): void {
  const covering = grantsOn(principal, projectId).filter((g) => isUnder(path, g.pathPrefix));
  if (covering.length === 0) throw hidden();
  if (!covering.some((g) => PERMISSIONS[g.role].has(permission))) {
    throw permissionDenied(
      `this token may not ${VERB[permission]} here (its roles: ${[...new Set(covering.map((g) => g.role))].join(", ")})`,
    );
  }
}

const VERB: Record<Permission, string> = {
  read: "read metadata",
  write: "change secrets",
  access: "read payloads",
  admin: "administer this project",
};

/**
 * Checks that the caller may do `permission` on a secret, and notes the
 * secret in the call's audit event. A secret outside the caller's grants is
 * NOT_FOUND, exactly as if it did not exist.
 */
export function authorizeSecret(
  caller: Caller,
  secret: Pick<SecretRow, "id" | "projectId" | "path" | "name">,
  permission: Permission,
  hidden: () => Error = () => secretNotFound(secret.id),
): void {
  // Noted before the check: a refused call's event must name the secret it
  // aimed at (the trail is for the project's admins, not for the caller).
  noteFacts(caller.audit, secretFacts(secret));
  authorize(requirePrincipal(caller.principal), secret.projectId, secret.path, permission, hidden);
}

/**
 * The secret a call names as a query found it (undefined: there is none),
 * authorized as authorizeSecret does: NOT_FOUND when it is missing or lies
 * outside the caller's grants.
 */
export function authorizedSecret<S extends Pick<SecretRow, "id" | "projectId" | "path" | "name">>(
  caller: Caller,
  secretId: string,
  permission: Permission,
  found: S | undefined,
): S {
  if (found === undefined) throw secretNotFound(secretId);
  authorizeSecret(caller, found, permission);
  return found;
}

/**
 * Checks that the caller may create or move a secret to (project, path):
 * without any grant on the project it is NOT_FOUND; with grants that do not
 * cover the path, or lack the permission, PERMISSION_DENIED.
 */
export function authorizePlacement(caller: Caller, projectId: string, path: string): void {
  const principal = requirePrincipal(caller.principal);
  noteFacts(caller.audit, { projectId });
  if (projectReadable(principal, projectId)) {
    authorize(principal, projectId, path, "write", () =>
      permissionDenied(`this token's grants on project ${projectId} do not cover path ${path}`),
    );
    return;
  }
  throw projectNotFound(projectId);
}

/** Whether grants let their holder read payloads at (project, path). */
export function readsPayloadsAt(
  grants: readonly Grant[],
  projectId: string,
  path: string,
): boolean {
  return grants.some(
    (g) =>
      (g.projectId === projectId || (g.projectId === "" && g.role === "admin")) &&
      isUnder(path, g.pathPrefix) &&
      PERMISSIONS[g.role].has("access"),
  );
}

/**
 * The rule that keeps a move from laundering a narrow grant (README,
 * "Moving a secret"): a secret may move from `from` to `to` only when the
 * caller may read its payload where it is (it could copy the payload anyway),
 * or when no live token would gain the payload by the move, that is every
 * token that reads payloads at `to` reads them at `from` as well. Looking at
 * every token, not only the caller's, is what holds against one person
 * holding several tokens (a write token and a narrow access token), which the
 * token model cannot link to one another.
 */
export function moveWidensReaders(
  caller: Principal,
  tokens: readonly (readonly Grant[])[],
  projectId: string,
  from: string,
  to: string,
): boolean {
  if (readsPayloadsAt(caller.grants, projectId, from)) return false;
  return [caller.grants, ...tokens].some(
    (grants) => readsPayloadsAt(grants, projectId, to) && !readsPayloadsAt(grants, projectId, from),
  );
}

/** The scopes where the principal holds `permission`, in one project or in all. */
export function scopesFor(
  principal: Principal,
  permission: Permission,
  projectId?: string,
): Scope[] | "all" {
  if (isGlobalAdmin(principal)) return "all";
  return principal.grants
    .filter((g) => projectId === undefined || g.projectId === projectId)
    .filter((g) => PERMISSIONS[g.role].has(permission))
    .map((g) => ({ projectId: g.projectId, pathPrefix: g.pathPrefix }));
}

/**
 * For project-wide reads (list, browse, tags, types): the scopes to filter
 * by. A project the principal has no grant on is NOT_FOUND; one where it has
 * grants but none that reads metadata is PERMISSION_DENIED.
 */
export function projectReadScopes(principal: Principal, projectId: string): Scope[] | "all" {
  if (grantsOn(principal, projectId).length === 0) throw projectNotFound(projectId);
  const scopes = scopesFor(principal, "read", projectId);
  if (scopes !== "all" && scopes.length === 0) {
    throw permissionDenied("this token may not read metadata in this project");
  }
  return scopes;
}

export function projectNotFound(projectId: string): Error {
  return notFound(`project ${projectId} not found`, {
    resource: { type: "project", id: projectId },
  });
}

export function secretNotFound(id: string): Error {
  return notFound(`secret ${id} not found`, { resource: { type: "secret", id } });
}

/** Guards the global-admin-only calls. */
export function requireGlobalAdmin(principal: Principal): void {
  if (!isGlobalAdmin(principal)) {
    throw permissionDenied("this call needs a global admin token");
  }
}

/**
 * Who may administer what, for the admin calls. A project is administered
 * by a global admin and by a token holding `admin` on that project for the
 * whole project (path prefix "/"). An admin grant narrowed to a folder gives
 * every secret permission in that folder but administers nothing: a
 * project's tokens and audit trail span every folder, so managing them from
 * a folder would reach past the folder.
 */
export type Administered = "all" | ReadonlySet<string>;

/** What the principal administers; PERMISSION_DENIED when it administers nothing. */
export function requireAdmin(principal: Principal | undefined): Administered {
  const p = requirePrincipal(principal);
  if (isGlobalAdmin(p)) return "all";
  const projects = new Set(
    p.grants
      .filter((g) => g.role === "admin" && g.projectId !== "" && g.pathPrefix === "/")
      .map((g) => g.projectId),
  );
  if (projects.size === 0) {
    throw permissionDenied("this call needs a token with the admin role on a whole project");
  }
  return projects;
}

/**
 * Checks that the principal administers a project. A project it holds no
 * grant on is NOT_FOUND, the same answer as a project that does not exist;
 * one it can see but not administer is PERMISSION_DENIED.
 */
export function requireProjectAdmin(
  principal: Principal,
  administered: Administered,
  projectId: string,
): void {
  if (administered === "all" || administered.has(projectId)) return;
  if (!projectReadable(principal, projectId)) throw projectNotFound(projectId);
  throw permissionDenied(`this token does not administer project ${projectId}`);
}

/** Whether a token with these grants is one the principal may see and revoke. */
export function mayManage(administered: Administered, grants: readonly StoredGrant[]): boolean {
  return administered === "all" || grants.every((g) => administered.has(g.projectId));
}
