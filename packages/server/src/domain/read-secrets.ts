import {
  findSecret,
  listFolders,
  listSecrets as querySecrets,
  listTags as queryTags,
  listTypes as queryTypes,
  type SecretOrder,
  type SecretView,
} from "../db/secrets.ts";
import { projectReadScopes, requirePrincipal, scopesFor } from "./authz.ts";
import type { Caller, Domain } from "./context.ts";
import { invalid } from "./errors.ts";
import {
  authorizeSecret,
  noteProject,
  regionFor,
  type SecretKind,
  secretNotFound,
} from "./shared.ts";
import {
  normalizePath,
  normalizeTags,
  validateName,
  validatePage,
  validateUuid,
} from "./validation.ts";

/** A secret's metadata. Secrets scheduled for deletion are returned too (status locked). */
export async function getSecret(
  domain: Domain,
  caller: Caller,
  input: { region: string; secretId: string },
): Promise<SecretView> {
  const region = regionFor(domain, caller, input.region);
  const id = validateUuid(input.secretId, "secret_id");
  const secret = await findSecret(region.db, region.name, id);
  if (secret === undefined) throw secretNotFound(id);
  authorizeSecret(caller, secret, "read");
  return secret;
}

export interface ListSecretsInput {
  region: string;
  projectId: string;
  name?: string;
  path?: string;
  pathPrefix?: string;
  tags: string[];
  type?: SecretKind;
  ephemeral?: boolean;
  protected?: boolean;
  scheduledForDeletion?: boolean;
  orderBy: SecretOrder;
  page: number;
  pageSize: number;
}

export async function listSecrets(
  domain: Domain,
  caller: Caller,
  input: ListSecretsInput,
): Promise<{ secrets: SecretView[]; totalCount: number }> {
  const region = regionFor(domain, caller, input.region);
  const principal = requirePrincipal(caller.principal);
  if (input.path !== undefined && input.pathPrefix !== undefined) {
    throw invalid("path_prefix", "cannot be combined with path; set one of them");
  }
  const page = validatePage(input.page, input.pageSize);
  const projectId =
    input.projectId === "" ? undefined : validateUuid(input.projectId, "project_id");
  if (projectId !== undefined) noteProject(caller, projectId);
  // Without a project: every secret the caller may read, in every project.
  const scopes =
    projectId === undefined
      ? scopesFor(principal, "read")
      : projectReadScopes(principal, projectId);
  const { rows, total } = await querySecrets(
    region.db,
    {
      region: region.name,
      scopes,
      ...(projectId !== undefined && { projectId }),
      ...(input.name !== undefined && { name: validateName(input.name) }),
      ...(input.path !== undefined && { path: normalizePath(input.path) }),
      ...(input.pathPrefix !== undefined && {
        pathPrefix: normalizePath(input.pathPrefix, "path_prefix"),
      }),
      tags: normalizeTags(input.tags),
      ...(input.type !== undefined && { type: input.type }),
      ...(input.ephemeral !== undefined && { ephemeral: input.ephemeral }),
      ...(input.protected !== undefined && { protected: input.protected }),
      scheduledForDeletion: input.scheduledForDeletion ?? false,
    },
    input.orderBy,
    page,
  );
  return { secrets: rows, totalCount: total };
}

export type BrowseItem =
  | { kind: "folder"; name: string; fullPath: string; secretCount: number }
  | { kind: "secret"; name: string; fullPath: string; secret: SecretView };

/**
 * The folders and secrets directly under a path: folders first, then
 * secrets, each by name. Folders exist only through the secrets below them.
 */
export async function browseSecrets(
  domain: Domain,
  caller: Caller,
  input: { region: string; projectId: string; prefix: string; page: number; pageSize: number },
): Promise<{ currentPath: string; items: BrowseItem[]; totalCount: number }> {
  const region = regionFor(domain, caller, input.region);
  const projectId = validateUuid(input.projectId, "project_id");
  const prefix = normalizePath(input.prefix, "prefix");
  const page = validatePage(input.page, input.pageSize);
  noteProject(caller, projectId);
  // Folders show only through the secrets the caller may see in them.
  const scopes = projectReadScopes(requirePrincipal(caller.principal), projectId);
  const folders = await listFolders(region.db, region.name, projectId, prefix, scopes);
  const join = (name: string) => (prefix === "/" ? `/${name}` : `${prefix}/${name}`);
  const folderItems: BrowseItem[] = folders
    .slice(page.offset, page.offset + page.limit)
    .map((f) => ({ kind: "folder", name: f.name, fullPath: join(f.name), secretCount: f.count }));
  const secretOffset = Math.max(0, page.offset - folders.length);
  const secretLimit = page.limit - folderItems.length;
  const { rows, total } = await querySecrets(
    region.db,
    { region: region.name, scopes, projectId, path: prefix, tags: [], scheduledForDeletion: false },
    "name_asc",
    { offset: secretOffset, limit: Math.max(secretLimit, 0) },
  );
  const secretItems: BrowseItem[] = (secretLimit > 0 ? rows : []).map((s) => ({
    kind: "secret",
    name: s.name,
    fullPath: join(s.name),
    secret: s,
  }));
  return {
    currentPath: prefix,
    items: [...folderItems, ...secretItems],
    totalCount: folders.length + total,
  };
}

export async function listTags(
  domain: Domain,
  caller: Caller,
  input: { region: string; projectId: string; page: number; pageSize: number },
): Promise<{ tags: string[]; totalCount: number }> {
  const region = regionFor(domain, caller, input.region);
  const projectId = validateUuid(input.projectId, "project_id");
  noteProject(caller, projectId);
  const { tags, total } = await queryTags(
    region.db,
    region.name,
    projectId,
    projectReadScopes(requirePrincipal(caller.principal), projectId),
    validatePage(input.page, input.pageSize),
  );
  return { tags, totalCount: total };
}

export async function listSecretTypes(
  domain: Domain,
  caller: Caller,
  input: { region: string; projectId: string; page: number; pageSize: number },
): Promise<{ types: SecretKind[]; totalCount: number }> {
  const region = regionFor(domain, caller, input.region);
  const projectId = validateUuid(input.projectId, "project_id");
  const page = validatePage(input.page, input.pageSize);
  noteProject(caller, projectId);
  const scopes = projectReadScopes(requirePrincipal(caller.principal), projectId);
  const types = (await queryTypes(region.db, region.name, projectId, scopes)) as SecretKind[];
  return { types: types.slice(page.offset, page.offset + page.limit), totalCount: types.length };
}
