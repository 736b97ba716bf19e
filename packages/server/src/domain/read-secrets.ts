import {
  findSecret,
  listFolders,
  listSecrets as querySecrets,
  listTags as queryTags,
  listTypes as queryTypes,
  type SecretOrder,
  type SecretView,
  secretOrderKinds,
} from "../db/secrets.ts";
import { namedOrOnlyProject, resolveAddress, resolveAndNoteRegion } from "./addressing.ts";
import { noteFacts } from "./audit.ts";
import { authorizedSecret, projectReadScopes, requirePrincipal, scopesFor } from "./authz.ts";
import type { Caller } from "./caller.ts";
import type { DomainDeps } from "./context.ts";
import { invalid } from "./errors.ts";
import { type ListPage, openPage, type PageInput } from "./paging.ts";
import type { SecretKind } from "./payload-types.ts";
import { normalizePath, normalizeTags, validateName, validateUuid } from "./validation.ts";

/** A secret's metadata. Secrets scheduled for deletion are returned too (status locked). */
export async function getSecret(
  domain: DomainDeps,
  caller: Caller,
  input: { region: string; secretId: string },
): Promise<SecretView> {
  const { region, id } = resolveAddress(domain, caller, input, "secretId");
  return authorizedSecret(caller, id, "read", await findSecret(region.db, region.name, id));
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
  pageToken?: string;
}

export async function listSecrets(
  domain: DomainDeps,
  caller: Caller,
  input: ListSecretsInput,
): Promise<{ secrets: SecretView[] } & ListPage> {
  const region = resolveAndNoteRegion(domain, caller, input.region);
  const principal = requirePrincipal(caller.principal);
  if (input.path !== undefined && input.pathPrefix !== undefined) {
    throw invalid("path_prefix", "cannot be combined with path; set one of them");
  }
  const projectId =
    input.projectId === "" ? undefined : validateUuid(input.projectId, "project_id");
  if (projectId !== undefined) noteFacts(caller.audit, { projectId });
  // Without a project: every secret the caller may read, in every project.
  const scopes =
    projectId === undefined
      ? scopesFor(principal, "read")
      : projectReadScopes(principal, projectId);
  const filter = {
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
  };
  // The token binds the filters and the order, not the caller's scopes
  // (which are applied afresh on every page).
  const { scopes: _, ...bound } = filter;
  const page = openPage(
    input,
    "secrets",
    { ...bound, order: input.orderBy },
    secretOrderKinds(input.orderBy),
  );
  const found = await querySecrets(region.db, filter, input.orderBy, page);
  return { secrets: found.rows, ...page.listPage(found) };
}

export type BrowseItem =
  | { kind: "folder"; name: string; fullPath: string; secretCount: number }
  | { kind: "secret"; name: string; fullPath: string; secret: SecretView };

/**
 * The folders and secrets directly under a path: folders first, then
 * secrets, each by name. Folders exist only through the secrets below them.
 */
export async function browseSecrets(
  domain: DomainDeps,
  caller: Caller,
  input: { region: string; projectId: string; prefix: string } & PageInput,
): Promise<{ currentPath: string; items: BrowseItem[] } & ListPage> {
  const { region, id: projectId } = resolveAddress(
    domain,
    caller,
    { ...input, projectId: namedOrOnlyProject(caller, input.projectId) },
    "projectId",
  );
  const prefix = normalizePath(input.prefix, "prefix");
  // A browse key is ["f", folder] or ["s", name, path, id]: folders come first.
  const page = openPage(input, "browse", { region: region.name, projectId, prefix }, (k) =>
    k[0] === "f" ? ["text", "text"] : k[0] === "s" ? ["text", "text", "text", "uuid"] : undefined,
  );
  noteFacts(caller.audit, { projectId });
  // Folders show only through the secrets the caller may see in them.
  const scopes = projectReadScopes(requirePrincipal(caller.principal), projectId);
  const after = page.after;
  const afterSecret = after?.[0] === "s";
  const folders = afterSecret
    ? []
    : await listFolders(
        region.db,
        region.name,
        projectId,
        prefix,
        scopes,
        after === undefined ? undefined : String(after[1]),
      );
  const join = (name: string) => (prefix === "/" ? `/${name}` : `${prefix}/${name}`);
  // One folder more than the page, to know whether another page follows.
  const folderWindow = folders.slice(page.offset, page.offset + page.limit + 1);
  const folderItems: BrowseItem[] = folderWindow
    .slice(0, page.limit)
    .map((f) => ({ kind: "folder", name: f.name, fullPath: join(f.name), secretCount: f.count }));
  const secretOffset = Math.max(0, page.offset - folders.length);
  const secretLimit = page.limit - folderItems.length;
  const filter = {
    region: region.name,
    scopes,
    projectId,
    path: prefix,
    tags: [],
    scheduledForDeletion: false,
  };
  // With secretLimit 0 the query still says (next) whether any secret follows.
  const {
    rows,
    total,
    more: moreSecrets,
  } = await querySecrets(region.db, filter, "name_asc", {
    offset: secretOffset,
    limit: secretLimit,
    ...(afterSecret && { after: after.slice(1) }),
  });
  const secretItems: BrowseItem[] = rows.map((s) => ({
    kind: "secret",
    name: s.name,
    fullPath: join(s.name),
    secret: s,
  }));
  const shown = [...folderItems, ...secretItems];
  const last = shown[shown.length - 1];
  const more = folderWindow.length > page.limit || moreSecrets;
  const nextPageToken =
    more && last !== undefined
      ? page.tokenAfter(
          last.kind === "folder"
            ? ["f", last.name]
            : ["s", last.secret.name, last.secret.path, last.secret.id],
        )
      : "";
  const allFolders =
    after === undefined
      ? folders.length
      : (await listFolders(region.db, region.name, projectId, prefix, scopes)).length;
  return { currentPath: prefix, items: shown, totalCount: allFolders + total, nextPageToken };
}

export async function listTags(
  domain: DomainDeps,
  caller: Caller,
  input: { region: string; projectId: string } & PageInput,
): Promise<{ tags: string[] } & ListPage> {
  const { region, id: projectId } = resolveAddress(
    domain,
    caller,
    { ...input, projectId: namedOrOnlyProject(caller, input.projectId) },
    "projectId",
  );
  const page = openPage(input, "tags", { region: region.name, projectId }, ["text"]);
  noteFacts(caller.audit, { projectId });
  const found = await queryTags(
    region.db,
    region.name,
    projectId,
    projectReadScopes(requirePrincipal(caller.principal), projectId),
    page,
  );
  return { tags: found.tags, ...page.listPage(found) };
}

export async function listSecretTypes(
  domain: DomainDeps,
  caller: Caller,
  input: { region: string; projectId: string } & PageInput,
): Promise<{ types: SecretKind[] } & ListPage> {
  const { region, id: projectId } = resolveAddress(
    domain,
    caller,
    { ...input, projectId: namedOrOnlyProject(caller, input.projectId) },
    "projectId",
  );
  const page = openPage(input, "types", { region: region.name, projectId }, ["text"]);
  noteFacts(caller.audit, { projectId });
  const scopes = projectReadScopes(requirePrincipal(caller.principal), projectId);
  // At most six rows: read them all for the total, and the page after the key in SQL's order.
  const all = (await queryTypes(region.db, region.name, projectId, scopes)) as SecretKind[];
  const after =
    page.after === undefined
      ? all
      : ((await queryTypes(
          region.db,
          region.name,
          projectId,
          scopes,
          String(page.after[0]),
        )) as SecretKind[]);
  const window = after.slice(page.offset, page.offset + page.limit + 1);
  const types = window.slice(0, page.limit);
  const last = types[types.length - 1];
  return {
    types,
    totalCount: all.length,
    nextPageToken: window.length > page.limit && last !== undefined ? page.tokenAfter([last]) : "",
  };
}
