import { randomUUID } from "node:crypto";
import { insertAuditEvents } from "../../db/audit.ts";
import type { Executor } from "../../db/client.ts";
import {
  deleteBindingRows,
  insertBinding,
  lockBinding,
  lockIssuer,
  listBindings as queryBindings,
  revokeTokensOfBindings,
} from "../../db/identity.ts";
import { timeOrderedUuid } from "../../db/ids.ts";
import { existingProjects } from "../../db/projects.ts";
import type { IdentityBindingRow, StoredCondition } from "../../db/schema.ts";
import { revokeDescendants } from "../../db/tokens.ts";
import { inTransaction } from "../../db/tx.ts";
import { resolveAndNoteHome } from "../addressing.ts";
import { auditRow, noteFacts, recordInTransaction } from "../audit.ts";
import {
  mayManage,
  projectNotFound,
  requireAdmin,
  requirePrincipal,
  requireProjectAdmin,
} from "../authz.ts";
import type { Caller } from "../caller.ts";
import type { DomainDeps } from "../context.ts";
import { invalid, notFound } from "../errors.ts";
import { validateConditions } from "../identity/claims.ts";
import { DEFAULT_BINDING_TTL_MS, MAX_EXCHANGED_TTL_MS } from "../identity/exchange.ts";
import { type ListPage, openPage, type PageInput } from "../paging.ts";
import { validateLabel, validateUuid } from "../validation.ts";
import { issuerNotFound } from "./issuers.ts";
import { auditProject, type GrantInput, requireMayGrant, validateGrants } from "./tokens.ts";

/** The shortest token_ttl a binding may set. */
export const MIN_BINDING_TTL_MS = 60_000;

export interface CreateBindingInput {
  name: string;
  issuerId: string;
  conditions: readonly StoredCondition[];
  grants: readonly GrantInput[];
  /** Undefined: DEFAULT_BINDING_TTL_MS. */
  tokenTtlMs?: number;
}

export function bindingNotFound(id: string): Error {
  return notFound(`identity binding ${id} not found`, {
    resource: { type: "identity_binding", id },
  });
}

/**
 * Binds the identities of one trusted issuer whose JWT claims match every
 * condition to grants. Needs admin on every project granted (a global
 * admin grant needs a global admin), as CreateToken does; a project the
 * caller cannot see is NOT_FOUND. token_ttl: 1 minute to 1 hour, unset 15
 * minutes.
 */
export async function createIdentityBinding(
  domain: DomainDeps,
  caller: Caller,
  input: CreateBindingInput,
): Promise<IdentityBindingRow> {
  const region = resolveAndNoteHome(domain, caller);
  const administered = requireAdmin(caller.principal);
  const principal = requirePrincipal(caller.principal);
  const name = validateLabel(input.name, "binding.name");
  const issuerId = validateUuid(input.issuerId, "binding.issuer_id");
  const conditions = validateConditions(input.conditions);
  const grants = validateGrants(input.grants, "binding.grants");
  const ttl = input.tokenTtlMs ?? DEFAULT_BINDING_TTL_MS;
  if (ttl < MIN_BINDING_TTL_MS || ttl > MAX_EXCHANGED_TTL_MS) {
    throw invalid("binding.token_ttl", `must be between 1m and 1h (or unset: 15m), got ${ttl} ms`);
  }
  requireMayGrant(principal, administered, grants);
  const projectIds = [...new Set(grants.map((g) => g.projectId).filter((p) => p !== ""))];
  return inTransaction(region.db, async (tx) => {
    const issuer = await lockIssuer(tx, issuerId, "share");
    if (issuer === undefined) throw issuerNotFound(issuerId);
    const existing = await existingProjects(tx, projectIds);
    const missing = projectIds.find((p) => !existing.has(p));
    if (missing !== undefined) throw projectNotFound(missing);
    const row = await insertBinding(tx, {
      id: randomUUID(),
      name,
      issuerId,
      conditions,
      grants,
      tokenTtlMs: ttl,
      createdBy: principal.tokenId,
    });
    const projectId = auditProject(grants);
    await recordInTransaction(tx, caller.audit, {
      bindingId: row.id,
      issuer: issuer.issuerUrl,
      ...(projectId !== undefined && { projectId }),
    });
    return row;
  });
}

export interface ListBindingsInput extends PageInput {
  issuerId: string;
  projectId: string;
}

/**
 * Identity bindings, by name: every one for a global admin; for a project
 * admin, those whose every grant lies on projects it administers (the ones
 * it may delete), so it never learns of grants elsewhere, as ListTokens.
 */
export async function listIdentityBindings(
  domain: DomainDeps,
  caller: Caller,
  input: ListBindingsInput,
): Promise<{ bindings: IdentityBindingRow[] } & ListPage> {
  const region = resolveAndNoteHome(domain, caller);
  const administered = requireAdmin(caller.principal);
  const principal = requirePrincipal(caller.principal);
  const issuerId = input.issuerId === "" ? undefined : validateUuid(input.issuerId, "issuer_id");
  const projectId =
    input.projectId === "" ? undefined : validateUuid(input.projectId, "project_id");
  const page = openPage(
    input,
    "identity_bindings",
    { issuerId: issuerId ?? "", projectId: projectId ?? "" },
    ["text", "uuid"],
  );
  if (projectId !== undefined) {
    noteFacts(caller.audit, { projectId });
    requireProjectAdmin(principal, administered, projectId);
  }
  const found = await queryBindings(
    region.db,
    {
      ...(issuerId !== undefined && { issuerId }),
      ...(projectId !== undefined && { projectId }),
      ...(administered !== "all" && { within: [...administered] }),
    },
    page,
  );
  return { bindings: found.rows, ...page.listPage(found) };
}

/**
 * Revokes, inside the caller's transaction, every live token exchanged
 * through these bindings and every token those created (revokeToken's
 * cascade), one audit event per token revoked (target_token_id), and
 * returns their ids for the after-commit notice.
 */
export async function revokeBindingTokens(
  tx: Executor,
  caller: Caller,
  bindingIds: readonly string[],
): Promise<string[]> {
  const direct = await revokeTokensOfBindings(tx, bindingIds);
  const revoked = [...direct];
  for (const t of direct) revoked.push(...(await revokeDescendants(tx, t.id)));
  if (caller.audit !== undefined && revoked.length > 0) {
    const event = auditRow(caller.audit, "OK");
    await insertAuditEvents(
      tx,
      revoked.map((t) => ({
        ...event,
        id: timeOrderedUuid(),
        projectId: auditProject(t.grants) ?? null,
        targetTokenId: t.id,
      })),
    );
  }
  return revoked.map((t) => t.id);
}

/**
 * Deletes a binding and revokes every token exchanged through it (the
 * RevokeToken path: `onRevoked` after commit). Needs admin on every project
 * it grants on; one the caller may not manage is NOT_FOUND, as a missing one.
 */
export async function deleteIdentityBinding(
  domain: DomainDeps,
  caller: Caller,
  input: { bindingId: string },
  onRevoked: (tokenIds: readonly string[]) => void,
): Promise<{ binding: IdentityBindingRow; revokedTokens: number }> {
  const region = resolveAndNoteHome(domain, caller);
  const administered = requireAdmin(caller.principal);
  const id = validateUuid(input.bindingId, "binding_id");
  const result = await inTransaction(region.db, async (tx) => {
    const binding = await lockBinding(tx, id, "update");
    if (binding === undefined || !mayManage(administered, binding.grants)) {
      throw bindingNotFound(id);
    }
    const projectId = auditProject(binding.grants);
    noteFacts(caller.audit, { bindingId: id, ...(projectId !== undefined && { projectId }) });
    const revoked = await revokeBindingTokens(tx, caller, [id]);
    await deleteBindingRows(tx, [id]);
    await recordInTransaction(tx, caller.audit, {});
    return { binding, revoked };
  });
  if (result.revoked.length > 0) onRevoked(result.revoked);
  return { binding: result.binding, revokedTokens: result.revoked.length };
}
