import { randomUUID } from "node:crypto";
import { pgErrorCode } from "../../db/errors.ts";
import { removeProjectFromBindings } from "../../db/identity.ts";
import {
  deleteProjectRow,
  insertProject,
  lockProject,
  listProjects as queryProjects,
  removeProjectGrants,
  renameProject,
} from "../../db/projects.ts";
import type { ProjectRow } from "../../db/schema.ts";
import { countProjectSecrets, destroyProjectSecrets } from "../../db/secrets.ts";
import { inTransaction } from "../../db/tx.ts";
import { resolveAndNoteHome } from "../addressing.ts";
import { noteFacts, recordInTransaction } from "../audit.ts";
import {
  projectNotFound,
  requireAdmin,
  requireGlobalAdmin,
  requirePrincipal,
  requireProjectAdmin,
} from "../authz.ts";
import type { Caller } from "../caller.ts";
import type { DomainDeps } from "../context.ts";
import { alreadyExists, failedPrecondition } from "../errors.ts";
import { type ListPage, openPage, type PageInput } from "../paging.ts";
import { validateLabel, validateUuid } from "../validation.ts";

/** A project name taken by another project: names are unique per installation. */
function nameTaken(err: unknown, name: string): unknown {
  return pgErrorCode(err) === "23505"
    ? alreadyExists(`a project named ${JSON.stringify(name)} already exists`)
    : err;
}

/** Creates a project (global admins only). Names are unique (ALREADY_EXISTS). */
export async function createProject(
  domain: DomainDeps,
  caller: Caller,
  input: { name: string },
): Promise<ProjectRow> {
  const region = resolveAndNoteHome(domain, caller);
  requireGlobalAdmin(requirePrincipal(caller.principal));
  const name = validateLabel(input.name);
  const id = randomUUID();
  try {
    return await inTransaction(region.db, async (tx) => {
      const project = await insertProject(tx, { id, name });
      await recordInTransaction(tx, caller.audit, { projectId: id });
      return project;
    });
  } catch (err) {
    throw nameTaken(err, name);
  }
}

/**
 * Renames a project: a global admin, or an admin of the whole project. A
 * project the caller has no grant on is NOT_FOUND, like one that does not
 * exist.
 */
export async function updateProject(
  domain: DomainDeps,
  caller: Caller,
  input: { projectId: string; name: string },
): Promise<ProjectRow> {
  const region = resolveAndNoteHome(domain, caller);
  const administered = requireAdmin(caller.principal);
  const projectId = validateUuid(input.projectId, "project_id");
  noteFacts(caller.audit, { projectId });
  requireProjectAdmin(requirePrincipal(caller.principal), administered, projectId);
  const name = validateLabel(input.name);
  try {
    return await inTransaction(region.db, async (tx) => {
      const row = await renameProject(tx, projectId, name);
      if (row === undefined) throw projectNotFound(projectId);
      await recordInTransaction(tx, caller.audit, { projectId });
      return row;
    });
  } catch (err) {
    throw nameTaken(err, name);
  }
}

/** What deleteProject tells about the tokens whose grants it changed. */
export interface TokenHooks {
  /** Tokens left with no grant, and so revoked. */
  revoked(tokenIds: readonly string[]): void;
  /** Tokens that lost their grants on the project and keep others. */
  changed(tokenIds: readonly string[]): void;
}

/**
 * Deletes a project (global admins only) and every grant on it; a token left
 * without any grant is revoked. While any region holds a secret of the
 * project, live or scheduled for deletion, the delete is refused
 * (FAILED_PRECONDITION) unless `force` is set: then those secrets are
 * destroyed for good first, region by region.
 *
 * The project's row is locked for update for the whole call: secret
 * creation holds a share lock on it (inProjectTransaction in
 * create-secret.ts), so no secret can be created in the project between the
 * count and the delete. Each region's
 * destruction commits on its own (regions are separate databases): if the
 * call fails half way, the project is still there and the call can be
 * repeated.
 */
export async function deleteProject(
  domain: DomainDeps,
  caller: Caller,
  input: { projectId: string; force: boolean },
  tokens: TokenHooks = { changed() {}, revoked() {} },
): Promise<{ project: ProjectRow; destroyedSecrets: number; updatedTokens: number }> {
  const homeRegion = resolveAndNoteHome(domain, caller);
  const projectId = validateUuid(input.projectId, "project_id");
  noteFacts(caller.audit, { projectId });
  requireGlobalAdmin(requirePrincipal(caller.principal));
  const result = await inTransaction(homeRegion.db, async (tx) => {
    const project = await lockProject(tx, projectId);
    if (project === undefined) throw projectNotFound(projectId);
    // The home region's database is reached through this transaction: PGlite
    // has one connection, and a second transaction there would wait forever.
    const executorFor = (db: unknown) => (db === homeRegion.db ? tx : undefined);
    const held: string[] = [];
    for (const region of domain.regions.all()) {
      const ex = executorFor(region.database.db) ?? region.database.db;
      const { live, scheduled } = await countProjectSecrets(ex, region.name, projectId);
      if (live + scheduled > 0) {
        held.push(`${region.name}: ${live} live, ${scheduled} scheduled for deletion`);
      }
    }
    if (held.length > 0 && !input.force) {
      throw failedPrecondition(
        `project ${projectId} still holds secrets (${held.join("; ")}); delete them and wait for the restore window, or delete the project with force (coffer project delete --force), which destroys them for good`,
      );
    }
    let destroyedSecrets = 0;
    if (held.length > 0) {
      for (const region of domain.regions.all()) {
        const own = executorFor(region.database.db);
        destroyedSecrets +=
          own !== undefined
            ? await destroyProjectSecrets(own, region.name, projectId)
            : await inTransaction(region.database.db, (rtx) =>
                destroyProjectSecrets(rtx, region.name, projectId),
              );
      }
    }
    // Bindings lose the project's grants as tokens do; one left with none goes.
    await removeProjectFromBindings(tx, projectId);
    const updated = await removeProjectGrants(tx, projectId);
    await deleteProjectRow(tx, projectId);
    await recordInTransaction(tx, caller.audit, { projectId });
    return { project, destroyedSecrets, updated };
  });
  for (const region of domain.regions.all()) {
    if (result.destroyedSecrets > 0) domain.announce(region.name);
  }
  // Revoked tokens go through the revocation hook (caches forgotten, watch
  // streams ended, on every replica); tokens that only lost this project's
  // grant are forgotten here, and other replicas' caches hold them at most
  // the authenticator's TTL (their streams' re-check sees the new grants).
  tokens.revoked(result.updated.filter((t) => t.revoked).map((t) => t.id));
  tokens.changed(result.updated.filter((t) => !t.revoked).map((t) => t.id));
  return {
    project: result.project,
    destroyedSecrets: result.destroyedSecrets,
    updatedTokens: result.updated.length,
  };
}

/**
 * The projects the caller administers, by name: every project for a global
 * admin. Projects named in grants but never created are not listed.
 */
export async function listProjects(
  domain: DomainDeps,
  caller: Caller,
  input: PageInput,
): Promise<{ projects: ProjectRow[] } & ListPage> {
  const region = resolveAndNoteHome(domain, caller);
  const administered = requireAdmin(caller.principal);
  const page = openPage(input, "projects", {}, ["text", "uuid"]);
  const found = await queryProjects(
    region.db,
    administered === "all" ? "all" : [...administered],
    page,
  );
  return { projects: found.rows, ...page.listPage(found) };
}
