import type { Db } from "../../db/client.ts";
import type { StoredGrant } from "../../db/schema.ts";
import { resolveAndNoteRegion } from "../audit.ts";
import {
  isGlobalAdmin,
  type Principal,
  projectNotFound,
  type Role,
  requirePrincipal,
} from "../authz.ts";
import type { Caller, Domain } from "../context.ts";
import { invalid, permissionDenied } from "../errors.ts";
import { validateText } from "../validation.ts";

/**
 * Who may administer what, for the admin calls. A project is administered
 * by a global admin and by a token holding `admin` on that project for the
 * whole project (path prefix "/"). An admin grant narrowed to a folder gives
 * every secret permission in that folder but administers nothing: a
 * project's tokens and audit trail span every folder, so managing them from
 * a folder would reach past the folder.
 */
export type Administered = "all" | ReadonlySet<string>;

/**
 * The home region: projects, tokens and the audit events of admin calls live
 * in the default region's database. Points the call's audit event there.
 */
export function home(domain: Domain, caller: Caller): { name: string; db: Db } {
  return resolveAndNoteRegion(domain, caller.audit, "");
}

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
  if (!principal.grants.some((g) => g.projectId === projectId)) {
    throw projectNotFound(projectId);
  }
  throw permissionDenied(`this token does not administer project ${projectId}`);
}

/** Whether a token with these grants is one the principal may see and revoke. */
export function mayManage(administered: Administered, grants: readonly StoredGrant[]): boolean {
  return administered === "all" || grants.every((g) => administered.has(g.projectId));
}

const ROLES: Record<Role, true> = {
  admin: true,
  full_access: true,
  secret_write: true,
  read_only: true,
  secret_access: true,
};

export function isRole(value: string): value is Role {
  return Object.hasOwn(ROLES, value);
}

export const ROLE_NAMES = Object.keys(ROLES).join(", ");

/** Longest project or token name, in characters. */
export const MAX_LABEL_LENGTH = 255;

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;

/**
 * Checks a name meant for people (projects, tokens): 1-255 characters, no
 * control characters, not only whitespace.
 * @returns the name, unchanged.
 */
export function validateLabel(value: string, field = "name"): string {
  const rule = `must be 1-${MAX_LABEL_LENGTH} characters`;
  if (value === "" || /^\s+$/u.test(value)) throw invalid(field, `is required: ${rule}`);
  const length = [...value].length;
  if (length > MAX_LABEL_LENGTH) throw invalid(field, `${rule} (got ${length})`);
  if (CONTROL.test(value)) throw invalid(field, `${rule}, without control characters`);
  return validateText(value, field);
}
