import { findSecret } from "../db/secrets.ts";
import { findVersion, listVersions as queryVersions, type VersionMeta } from "../db/versions.ts";
import { resolveAddress } from "./addressing.ts";
import { authorizedSecret } from "./authz.ts";
import type { Caller } from "./caller.ts";
import type { DomainDeps } from "./context.ts";
import { notFound } from "./errors.ts";
import { type ListPage, openPage, type PageInput } from "./paging.ts";
import { parseRevision } from "./validation.ts";

export type VersionView = VersionMeta & { latest: boolean };
export type VersionStatus = "enabled" | "disabled" | "scheduled_for_deletion" | "deleted";

/** A version's metadata; never its payload, and reading it never consumes. */
export async function getVersion(
  domain: DomainDeps,
  caller: Caller,
  input: { region: string; secretId: string; revision: string },
): Promise<VersionView> {
  const { region, id } = resolveAddress(domain, caller, input, "secretId");
  const ref = parseRevision(input.revision);
  authorizedSecret(caller, id, "read", await findSecret(region.db, region.name, id));
  const version = await findVersion(region.db, id, ref);
  if (version === undefined) throw versionNotFound(id, input.revision);
  if (caller.audit) caller.audit.facts.revision = version.revision;
  return version;
}

export function versionNotFound(secretId: string, revision: string) {
  return notFound(
    revision === "latest_enabled"
      ? `secret ${secretId} has no enabled version`
      : `version ${revision} of secret ${secretId} not found`,
    { resource: { type: "secret_version", id: `${secretId}/${revision}` } },
  );
}

/** A secret's versions, newest first; by default those that are enabled or disabled. */
export async function listVersions(
  domain: DomainDeps,
  caller: Caller,
  input: {
    region: string;
    secretId: string;
    statuses: VersionStatus[];
  } & PageInput,
): Promise<{ versions: VersionView[] } & ListPage> {
  const { region, id } = resolveAddress(domain, caller, input, "secretId");
  const statuses = input.statuses.length > 0 ? input.statuses : ["enabled", "disabled"];
  const page = openPage(
    input,
    "versions",
    { region: region.name, secretId: id, statuses: [...new Set(statuses)].sort() },
    ["int"],
  );
  authorizedSecret(caller, id, "read", await findSecret(region.db, region.name, id));
  const found = await queryVersions(region.db, id, statuses, page);
  return { versions: found.rows, ...page.listPage(found) };
}
