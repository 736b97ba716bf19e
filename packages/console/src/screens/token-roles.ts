import { type Grant, type Project, Role } from "@coffer/api";

/** The roles a grant can give, as the create form offers them, least power last. */
export const ROLES: readonly { role: Role; key: string; label: string; help: string }[] = [
  {
    role: Role.ADMIN,
    key: "admin",
    label: "Admin",
    help: "manages the project's tokens and reads its audit trail, plus full access",
  },
  {
    role: Role.FULL_ACCESS,
    key: "full_access",
    label: "Full access",
    help: "creates, changes and deletes secrets, and reads their values",
  },
  {
    role: Role.SECRET_WRITE,
    key: "secret_write",
    label: "Write",
    help: "creates, changes and deletes secrets, never reads a value",
  },
  {
    role: Role.READ_ONLY,
    key: "read_only",
    label: "Read only",
    help: "reads secrets' metadata, never a value",
  },
  {
    role: Role.SECRET_ACCESS,
    key: "secret_access",
    label: "Access",
    help: "reads values by path (for applications and the agent), nothing else",
  },
];

export function roleLabel(role: Role): string {
  return ROLES.find((r) => r.role === role)?.label ?? "Unknown role";
}

/** One grant in words: "Read only on demo, /prod" or "Admin of every project". */
export function grantLabel(grant: Grant, projects: readonly Project[]): string {
  if (grant.projectId === "") return `${roleLabel(grant.role)} of every project (global)`;
  const project =
    projects.find((p) => p.id === grant.projectId)?.name ?? grant.projectId.slice(0, 8);
  const prefix = grant.pathPrefix === "" ? "/" : grant.pathPrefix;
  return `${roleLabel(grant.role)} on ${project}, ${prefix === "/" ? "every folder" : `${prefix} and below`}`;
}
