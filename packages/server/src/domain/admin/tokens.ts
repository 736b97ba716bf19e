import { randomUUID } from "node:crypto";
import { ACCESS_KEY_PREFIX, generateScalewayKey, generateToken } from "../../crypto/tokens.ts";
import { insertAuditEvents } from "../../db/audit.ts";
import { timeOrderedUuid } from "../../db/ids.ts";
import { existingProjects, findProjects } from "../../db/projects.ts";
import type { ProjectRow, StoredGrant, TokenRow } from "../../db/schema.ts";
import {
  findToken,
  insertToken,
  lockTokenShared,
  listTokens as queryTokens,
  revokeDescendants,
  revokeToken as revokeTokenRow,
} from "../../db/tokens.ts";
import { inTransaction } from "../../db/tx.ts";
import { resolveAndNoteHome } from "../addressing.ts";
import { auditRow, noteFacts, recordInTransaction } from "../audit.ts";
import {
  type Administered,
  isRole,
  mayManage,
  projectNotFound,
  ROLE_NAMES,
  requireAdmin,
  requirePrincipal,
  requireProjectAdmin,
} from "../authz.ts";
import type { Caller, Principal } from "../caller.ts";
import type { DomainDeps } from "../context.ts";
import {
  failedPrecondition,
  invalid,
  notFound,
  permissionDenied,
  unauthenticated,
} from "../errors.ts";
import { type ListPage, openPage, type PageInput } from "../paging.ts";
import { normalizePath, validateLabel, validateUuid } from "../validation.ts";
import { validateTime } from "./time.ts";

/**
 * A token as the admin API shows it: never its value, and not its hash
 * either. `accessKey` is a Scaleway-style key's access key id (its prefix),
 * null for a Coffer token.
 */
export type TokenView = Omit<TokenRow, "hash"> & { accessKey: string | null };

/**
 * The form of a token's value: Coffer's own, or a Scaleway-style key (an
 * access key id and a UUID secret key) for Scaleway's clients. Nothing else
 * differs between them.
 */
export type TokenFormat = "coffer" | "scaleway";

/** Most grants on one token. */
export const MAX_GRANTS = 100;

export interface GrantInput {
  /** A project's UUID; "" only for a global admin grant. */
  projectId: string;
  /** A role name; "" when the request left it unspecified. */
  role: string;
  /** "" or "/": the whole project. */
  pathPrefix: string;
}

export interface CreateTokenInput {
  name: string;
  grants: readonly GrantInput[];
  expiresAt?: Date;
  /** Unset: "coffer". */
  format?: TokenFormat;
}

export function tokenView(row: TokenRow): TokenView {
  const { hash: _hash, ...rest } = row;
  // A Coffer token's prefix is always `coffer_...`, so `SCW` names the other form.
  return { ...rest, accessKey: row.prefix.startsWith(ACCESS_KEY_PREFIX) ? row.prefix : null };
}

/** The project an admin call on a token is filed under in the audit trail: its first one. */
export function auditProject(grants: readonly StoredGrant[]): string | undefined {
  return grants.find((g) => g.projectId !== "")?.projectId;
}

/** Validates and normalises grants; exact duplicates are folded. */
export function validateGrants(grants: readonly GrantInput[], name = "grants"): StoredGrant[] {
  if (grants.length === 0) {
    throw invalid(name, "must hold at least one grant (a project, a role and a path prefix)");
  }
  if (grants.length > MAX_GRANTS) {
    throw invalid(name, `must hold at most ${MAX_GRANTS} grants (got ${grants.length})`);
  }
  const out = new Map<string, StoredGrant>();
  for (const [i, g] of grants.entries()) {
    const field = `${name}[${i}]`;
    if (g.role === "") throw invalid(`${field}.role`, `is required: one of ${ROLE_NAMES}`);
    if (!isRole(g.role)) {
      throw invalid(
        `${field}.role`,
        `must be one of ${ROLE_NAMES} (got ${JSON.stringify(g.role)})`,
      );
    }
    let grant: StoredGrant;
    if (g.projectId === "") {
      if (g.role !== "admin") {
        throw invalid(
          `${field}.project_id`,
          "is required (only an admin grant may leave it empty, which makes a global admin)",
        );
      }
      const prefix = normalizePath(g.pathPrefix, `${field}.path_prefix`);
      if (prefix !== "/") {
        throw invalid(`${field}.path_prefix`, 'must be "/" or empty for a global admin grant');
      }
      grant = { projectId: "", role: "admin", pathPrefix: "/" };
    } else {
      grant = {
        projectId: validateUuid(g.projectId, `${field}.project_id`),
        role: g.role,
        pathPrefix: normalizePath(g.pathPrefix, `${field}.path_prefix`),
      };
    }
    out.set(`${grant.projectId} ${grant.role} ${grant.pathPrefix}`, grant);
  }
  return [...out.values()];
}

/**
 * Checks that the caller may give these grants (to a token, or to the
 * identities of a binding): admin on every project granted, and global admin
 * for a global admin grant. A project the caller cannot see is NOT_FOUND.
 */
export function requireMayGrant(
  principal: Principal,
  administered: Administered,
  grants: readonly StoredGrant[],
): void {
  for (const g of grants) {
    if (g.projectId === "") {
      if (administered !== "all") {
        throw permissionDenied("only a global admin may grant the global admin role");
      }
    } else {
      requireProjectAdmin(principal, administered, g.projectId);
    }
  }
}

/**
 * Creates a token and returns its value, the only time anyone sees it: only
 * its SHA-256 is stored. The caller may grant roles only on projects it
 * administers, and only a global admin may make another global admin; a
 * project the caller cannot see is NOT_FOUND, as one that does not exist.
 *
 * The new token records its creator (the calling token) and never outlives
 * it: when the creator expires, the new token's `expires_at` must be set and
 * no later than the creator's, else INVALID_ARGUMENT naming the limit (it is
 * refused rather than clamped, so nobody gets a shorter-lived token than they
 * asked for without noticing). A creator that never expires sets no limit.
 * Revoking the creator later revokes this token too (revokeToken).
 *
 * With format "scaleway" the value is a Scaleway-style secret key and the
 * result carries its access key id too, which is also the stored prefix; a
 * unique index keeps access key ids apart (two random ones collide with a
 * chance of 36^-17: the index turns that into ALREADY_EXISTS rather than
 * two tokens answering to one name).
 */
export async function createToken(
  domain: DomainDeps,
  caller: Caller,
  input: CreateTokenInput,
): Promise<{ token: TokenView; value: string; accessKey?: string }> {
  const region = resolveAndNoteHome(domain, caller);
  const administered = requireAdmin(caller.principal);
  const principal = requirePrincipal(caller.principal);
  const name = validateLabel(input.name);
  const grants = validateGrants(input.grants);
  if (input.expiresAt !== undefined) {
    const at = validateTime("expires_at", input.expiresAt).getTime();
    if (at <= Date.now()) {
      throw invalid("expires_at", "must be in the future (or unset: the token never expires)");
    }
  }
  requireMayGrant(principal, administered, grants);
  const projectIds = [...new Set(grants.map((g) => g.projectId).filter((p) => p !== ""))];
  const scaleway = input.format === "scaleway" ? generateScalewayKey() : undefined;
  const token = scaleway ?? generateToken();
  const id = randomUUID();
  const row = await inTransaction(region.db, async (tx) => {
    // Held until commit: a concurrent revocation of the creator waits for
    // this token to exist and then revokes it too, or commits first and is
    // seen here.
    const creator = await lockTokenShared(tx, principal.tokenId);
    if (creator === undefined || creator.revokedAt !== null) {
      throw unauthenticated("the token making this call was revoked; no token was created");
    }
    const limit = creator.expiresAt;
    if (limit !== null && (input.expiresAt === undefined || input.expiresAt > limit)) {
      throw invalid(
        "expires_at",
        `must be set and no later than ${limit.toISOString()}, when the token making this call expires: a token cannot outlive the token that creates it`,
      );
    }
    const existing = await existingProjects(tx, projectIds);
    const missing = projectIds.find((p) => !existing.has(p));
    if (missing !== undefined) throw projectNotFound(missing);
    const inserted = await insertToken(tx, {
      id,
      name,
      prefix: token.prefix,
      hash: token.hash,
      grants,
      expiresAt: input.expiresAt ?? null,
      createdBy: creator.id,
    });
    const projectId = auditProject(grants);
    await recordInTransaction(tx, caller.audit, {
      targetTokenId: id,
      ...(projectId !== undefined && { projectId }),
    });
    return inserted;
  });
  return {
    token: tokenView(row),
    value: token.value,
    ...(scaleway !== undefined && { accessKey: scaleway.accessKey }),
  };
}

export interface ListTokensInput extends PageInput {
  /** "" for every token the caller may see. */
  projectId: string;
  includeInactive: boolean;
}

/**
 * Tokens, newest first, never with their values. A global admin sees every
 * token; a project admin sees the tokens whose grants all lie on projects it
 * administers (the ones it may revoke), so it never learns of grants on
 * projects it does not administer.
 */
export async function listTokens(
  domain: DomainDeps,
  caller: Caller,
  input: ListTokensInput,
): Promise<{ tokens: TokenView[] } & ListPage> {
  const region = resolveAndNoteHome(domain, caller);
  const administered = requireAdmin(caller.principal);
  const principal = requirePrincipal(caller.principal);
  let projectId: string | undefined;
  if (input.projectId !== "") {
    projectId = validateUuid(input.projectId, "project_id");
  }
  const page = openPage(
    input,
    "tokens",
    { projectId: projectId ?? "", includeInactive: input.includeInactive },
    ["ts", "uuid"],
  );
  if (projectId !== undefined) {
    noteFacts(caller.audit, { projectId });
    requireProjectAdmin(principal, administered, projectId);
  }
  const found = await queryTokens(
    region.db,
    {
      ...(projectId !== undefined && { projectId }),
      ...(administered !== "all" && { within: [...administered] }),
      includeInactive: input.includeInactive,
    },
    page,
  );
  return { tokens: found.rows.map(tokenView), ...page.listPage(found) };
}

/**
 * The calling token as the admin API shows it, and the projects its grants
 * name (none for a global admin grant alone: ListProjects lists every project
 * for it). Any valid token may ask about itself: a console or a CLI learns
 * from it what to offer. Projects named in grants but deleted since are left
 * out, as ListProjects leaves them out.
 */
export async function getCaller(
  domain: DomainDeps,
  caller: Caller,
  _input: unknown,
): Promise<{ token: TokenView; projects: ProjectRow[] }> {
  const region = resolveAndNoteHome(domain, caller);
  const principal = requirePrincipal(caller.principal);
  const row = await findToken(region.db, principal.tokenId);
  // Revoked since the chain authenticated it: refused like any later call.
  if (row === undefined || row.revokedAt !== null) {
    throw unauthenticated("the token making this call was revoked");
  }
  const projectIds = [...new Set(row.grants.map((g) => g.projectId).filter((p) => p !== ""))];
  return { token: tokenView(row), projects: await findProjects(region.db, projectIds) };
}

export function tokenNotFound(id: string): Error {
  return notFound(`token ${id} not found`, { resource: { type: "token", id } });
}

/**
 * Revokes a token and every token it created, transitively (its children,
 * their children...): every later call with any of them is UNAUTHENTICATED.
 * A token minted by a token is a delegation, and a delegation ends with its
 * delegator. Revoking is not idempotent: a token already revoked is
 * FAILED_PRECONDITION naming when, so the audit trail holds exactly one
 * successful revocation and the first revocation time is kept. A token the
 * caller may not manage is NOT_FOUND, as one that does not exist. The call's
 * audit event names the token revoked (target_token_id); each token revoked
 * by the cascade gets an event of its own with the same request id.
 *
 * This is the one path by which tokens are revoked. After commit,
 * `onRevoked` is called once with the ids of every token this call revoked
 * (the named one first, then the cascade), so that they stop working at once
 * rather than when caches expire: authenticator caches forget them and their
 * watch streams end, on this replica and, by NOTIFY, on the others.
 */
export async function revokeToken(
  domain: DomainDeps,
  caller: Caller,
  input: { tokenId: string },
  onRevoked: (tokenIds: readonly string[]) => void = () => {},
): Promise<TokenView> {
  const region = resolveAndNoteHome(domain, caller);
  const administered = requireAdmin(caller.principal);
  const id = validateUuid(input.tokenId, "token_id");
  const row = await inTransaction(region.db, async (tx) => {
    const found = await findToken(tx, id);
    if (found === undefined || !mayManage(administered, found.grants)) throw tokenNotFound(id);
    const projectId = auditProject(found.grants);
    if (projectId !== undefined) noteFacts(caller.audit, { projectId });
    const revoked = await revokeTokenRow(tx, id);
    if (revoked === undefined) {
      throw failedPrecondition(
        `token ${id} is already revoked (since ${found.revokedAt?.toISOString() ?? "just now"})`,
      );
    }
    const descendants = await revokeDescendants(tx, id);
    await recordInTransaction(tx, caller.audit, { targetTokenId: id });
    if (caller.audit !== undefined && descendants.length > 0) {
      const event = auditRow(caller.audit, "OK");
      await insertAuditEvents(
        tx,
        descendants.map((d) => {
          const project = auditProject(d.grants);
          return {
            ...event,
            id: timeOrderedUuid(),
            projectId: project ?? null,
            targetTokenId: d.id,
          };
        }),
      );
    }
    return { revoked, descendants };
  });
  onRevoked([row.revoked.id, ...row.descendants.map((d) => d.id)]);
  return tokenView(row.revoked);
}
