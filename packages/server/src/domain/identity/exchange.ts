import { randomUUID } from "node:crypto";
import { generateToken } from "../../crypto/tokens.ts";
import { bindingsOfIssuer, findIssuerByUrl, lockBinding } from "../../db/identity.ts";
import type { IdentityBindingRow, StoredGrant } from "../../db/schema.ts";
import { insertToken } from "../../db/tokens.ts";
import { inTransaction } from "../../db/tx.ts";
import { resolveAndNoteHome } from "../addressing.ts";
import { type TokenView, tokenView } from "../admin/tokens.ts";
import { noteFacts, recordInTransaction } from "../audit.ts";
import type { Caller } from "../caller.ts";
import type { DomainDeps } from "../context.ts";
import { invalid, unauthenticated } from "../errors.ts";
import { bindingMatches } from "./claims.ts";
import { JwtRefusal, recordable, verifyJwt } from "./jwt.ts";
import type { KeyCache } from "./keys.ts";

/**
 * The one answer to every refused exchange: the caller learns that the JWT
 * was not accepted, and where an admin finds why; the audit event holds the
 * reason.
 */
export const EXCHANGE_REFUSED =
  "this JWT is not accepted; an admin finds the reason in the audit trail (method ExchangeToken)";

/** The longest life of an exchanged token, whatever the binding or the request say. */
export const MAX_EXCHANGED_TTL_MS = 3_600_000;
/** A binding's token_ttl when it sets none. */
export const DEFAULT_BINDING_TTL_MS = 15 * 60_000;
/** A token shorter-lived than this is not worth issuing: the JWT is as good as expired. */
const MIN_LIFE_MS = 1_000;
const MAX_TOKEN_NAME = 255;

export interface ExchangeInput {
  jwt: string;
  /** Requested life; undefined: the binding's token_ttl. */
  ttlMs?: number;
}

export interface ExchangeDeps {
  keys: KeyCache;
  now?: () => number;
}

/** A refusal: its reason and what is known go into the call's audit event, the caller gets EXCHANGE_REFUSED. */
function refuse(
  caller: Caller,
  reason: string,
  facts: { issuer?: string; subject?: string; bindingId?: string },
) {
  noteFacts(caller.audit, { ...facts, reason });
  return unauthenticated(EXCHANGE_REFUSED);
}

/** Two grant lists as sets: the same when each grant of one is in the other. */
function sameGrants(a: readonly StoredGrant[], b: readonly StoredGrant[]): boolean {
  const key = (g: StoredGrant) => `${g.projectId} ${g.role} ${g.pathPrefix}`;
  const left = new Set(a.map(key));
  const right = new Set(b.map(key));
  return left.size === right.size && [...left].every((k) => right.has(k));
}

/**
 * The bindings a verified JWT's claims select: none, one, or several that
 * agree (the same grants, as a set: the first by id stands for them). Several
 * that disagree are refused rather than merged or ranked: a workload
 * matching two bindings with different grants is a configuration mistake,
 * and either guess could widen what it may do.
 */
export function selectBinding(
  claims: Record<string, unknown>,
  bindings: readonly IdentityBindingRow[],
): { binding: IdentityBindingRow } | { refusal: string } {
  const matching = bindings
    .filter((b) => bindingMatches(claims, b.conditions))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const [first] = matching;
  if (first === undefined) return { refusal: "no binding matches" };
  if (matching.some((b) => !sameGrants(b.grants, first.grants))) {
    return { refusal: `bindings disagree (${matching.map((b) => b.id).join(", ")})` };
  }
  return { binding: first };
}

/**
 * How long an exchanged token lives: the requested ttl, capped by the
 * binding's token_ttl and by MAX_EXCHANGED_TTL_MS, and ending no later than
 * the JWT itself (exp, in seconds).
 */
export function exchangedExpiry(
  nowMs: number,
  bindingTtlMs: number,
  jwtExpS: number,
  requestedMs?: number,
): number {
  const life = Math.min(requestedMs ?? bindingTtlMs, bindingTtlMs, MAX_EXCHANGED_TTL_MS);
  return Math.min(nowMs + life, jwtExpS * 1000);
}

/**
 * AuthService.ExchangeToken: verifies a platform's JWT (jwt.ts) and issues a
 * Coffer token with the grants of the one binding its claims select. The
 * token is an ordinary one (only its hash stored, no creator), named
 * "<binding>: <subject>", and remembers its binding, issuer and subject.
 * Every refusal is UNAUTHENTICATED with EXCHANGE_REFUSED; its reason is in
 * the call's audit event, with the issuer and subject the JWT claimed.
 *
 * The token is inserted while the binding is held FOR SHARE: a concurrent
 * delete of the binding either waits and then revokes the new token too, or
 * commits first and the exchange is refused.
 */
export async function exchangeToken(
  domain: DomainDeps,
  caller: Caller,
  input: ExchangeInput,
  deps: ExchangeDeps,
): Promise<{ token: TokenView; value: string }> {
  const region = resolveAndNoteHome(domain, caller);
  const now = deps.now ?? Date.now;
  if (input.ttlMs !== undefined && input.ttlMs < MIN_LIFE_MS) {
    throw invalid("ttl", "must be at least 1s (or unset: the binding's token_ttl)");
  }
  if (input.jwt === "") throw refuse(caller, "no JWT", {});
  let verified: Awaited<ReturnType<typeof verifyJwt>>;
  try {
    verified = await verifyJwt(input.jwt, (iss) => findIssuerByUrl(region.db, iss), deps.keys, now);
  } catch (e) {
    if (e instanceof JwtRefusal) throw refuse(caller, e.reason, e.claimed);
    throw e;
  }
  const { issuer, claims } = verified;
  const subject = recordable(claims.sub);
  const facts = { issuer: issuer.issuerUrl, ...(subject !== undefined && { subject }) };
  const selected = selectBinding(claims, await bindingsOfIssuer(region.db, issuer.id));
  if ("refusal" in selected) throw refuse(caller, selected.refusal, facts);
  const { binding } = selected;
  const bound = { ...facts, bindingId: binding.id };
  const at = now();
  const expiresAt = exchangedExpiry(at, binding.tokenTtlMs, claims.exp, input.ttlMs);
  if (expiresAt - at < MIN_LIFE_MS) throw refuse(caller, "expired", bound);
  const token = generateToken();
  const id = randomUUID();
  const name = Array.from(`${binding.name}: ${subject ?? ""}`)
    .slice(0, MAX_TOKEN_NAME)
    .join("");
  const row = await inTransaction(region.db, async (tx) => {
    if ((await lockBinding(tx, binding.id, "share")) === undefined) {
      throw refuse(caller, "no binding matches (the binding was deleted)", facts);
    }
    const inserted = await insertToken(tx, {
      id,
      name,
      prefix: token.prefix,
      hash: token.hash,
      grants: binding.grants,
      expiresAt: new Date(expiresAt),
      createdBy: null,
      bindingId: binding.id,
      issuer: issuer.issuerUrl,
      subject: subject ?? null,
    });
    const projectId = binding.grants.find((g) => g.projectId !== "")?.projectId;
    await recordInTransaction(tx, caller.audit, {
      ...bound,
      targetTokenId: id,
      ...(projectId !== undefined && { projectId }),
    });
    return inserted;
  });
  return { token: tokenView(row), value: token.value };
}
