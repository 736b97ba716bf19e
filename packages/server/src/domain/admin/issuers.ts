import { randomUUID } from "node:crypto";
import { createLocalJWKSet, type JSONWebKeySet } from "jose";
import { pgErrorCode } from "../../db/errors.ts";
import {
  deleteBindingRows,
  deleteIssuerRow,
  insertIssuer,
  lockBindingsOfIssuer,
  lockIssuer,
  listIssuers as queryIssuers,
  updateIssuerRow,
} from "../../db/identity.ts";
import type { TrustedIssuerRow } from "../../db/schema.ts";
import { inTransaction } from "../../db/tx.ts";
import { resolveAndNoteHome } from "../addressing.ts";
import { noteFacts, recordInTransaction } from "../audit.ts";
import { requireAdmin, requireGlobalAdmin, requirePrincipal } from "../authz.ts";
import type { Caller } from "../caller.ts";
import type { DomainDeps } from "../context.ts";
import { alreadyExists, invalid, notFound } from "../errors.ts";
import { fetchableUrlProblem } from "../identity/fetch.ts";
import { type ListPage, openPage, type PageInput } from "../paging.ts";
import { textProblem, validateLabel, validateText, validateUuid } from "../validation.ts";
import { revokeBindingTokens } from "./bindings.ts";

/** Where a new issuer's keys come from, as the request says. */
export type IssuerKeysInput =
  | { discovery: boolean }
  | { jwksUrl: string }
  | { staticJwks: string }
  | undefined;

export interface CreateIssuerInput {
  name: string;
  issuerUrl: string;
  audiences: readonly string[];
  keys: IssuerKeysInput;
}

const MAX_AUDIENCES = 20;
const MAX_URL_LENGTH = 1024;
const MAX_STATIC_KEYS = 100;
/** JWK members that hold private or secret key material: a static JWKS must have none. */
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "k", "oth"];
const KEY_TYPES = ["RSA", "EC", "OKP"];

export function issuerNotFound(id: string): Error {
  return notFound(`trusted issuer ${id} not found`, { resource: { type: "trusted_issuer", id } });
}

function validateIssuerUrl(value: string, fetched: boolean): string {
  const field = "issuer.issuer_url";
  validateText(value, field);
  if (value === "") {
    throw invalid(field, 'is required: the exact "iss" of the tokens (https://...)');
  }
  if (value.length > MAX_URL_LENGTH) {
    throw invalid(field, `must be at most ${MAX_URL_LENGTH} characters`);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\s\u0000-\u001f\u007f]/.test(value)) {
    throw invalid(field, "must not contain whitespace or control characters");
  }
  if (fetched) {
    const problem = fetchableUrlProblem(value);
    if (problem !== undefined) {
      throw invalid(
        field,
        `${problem} (discovery fetches <issuer_url>/.well-known/openid-configuration)`,
      );
    }
  }
  return value;
}

function validateAudiences(values: readonly string[], field: string): string[] {
  if (values.length === 0) {
    throw invalid(
      field,
      'must hold at least one audience (a token\'s "aud" must name one of them)',
    );
  }
  if (values.length > MAX_AUDIENCES) {
    throw invalid(field, `must hold at most ${MAX_AUDIENCES} audiences (got ${values.length})`);
  }
  return [...new Set(values.map((a, i) => validateLabel(a, `${field}[${i}]`)))];
}

/**
 * The rule a parsed JSON value breaks for Postgres (jsonb refuses what text
 * refuses: NUL, lone surrogates, which JSON escapes can spell), or undefined.
 */
function unstorable(value: unknown): string | undefined {
  if (typeof value === "string") return textProblem(value);
  if (Array.isArray(value)) {
    for (const item of value) {
      const problem = unstorable(item);
      if (problem !== undefined) return problem;
    }
  } else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      const problem = textProblem(k) ?? unstorable(v);
      if (problem !== undefined) return problem;
    }
  }
  return undefined;
}

/** Parses and checks a static JWKS: JSON, public keys only, each of a type JWTs are verified with. */
function validateStaticJwks(text: string, field: string): { keys: Record<string, unknown>[] } {
  const shape = 'must be a JWKS document: JSON {"keys": [public keys...]}';
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw invalid(field, `${shape} (it is not JSON)`);
  }
  const stored = unstorable(doc);
  if (stored !== undefined) throw invalid(field, `holds a string that ${stored}`);
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (typeof doc !== "object" || doc === null || !Array.isArray(keys)) throw invalid(field, shape);
  if (keys.length === 0 || keys.length > MAX_STATIC_KEYS) {
    throw invalid(field, `must hold 1-${MAX_STATIC_KEYS} keys (got ${keys.length})`);
  }
  for (const [i, key] of keys.entries()) {
    const at = `key ${i + 1}`;
    if (typeof key !== "object" || key === null || Array.isArray(key)) {
      throw invalid(field, `${at} is not a JSON object`);
    }
    const k = key as Record<string, unknown>;
    if (typeof k.kty !== "string" || !KEY_TYPES.includes(k.kty)) {
      throw invalid(field, `${at}: "kty" must be one of ${KEY_TYPES.join(", ")}`);
    }
    const secret = PRIVATE_MEMBERS.find((m) => Object.hasOwn(k, m));
    if (secret !== undefined) {
      // Named, never shown: the value is key material.
      throw invalid(field, `${at} holds private key material ("${secret}"): give public keys only`);
    }
  }
  try {
    createLocalJWKSet(doc as JSONWebKeySet);
  } catch {
    throw invalid(field, shape);
  }
  return { keys: keys as Record<string, unknown>[] };
}

type KeySourceColumns = Pick<TrustedIssuerRow, "keySource" | "jwksUrl" | "staticJwks">;

/**
 * A key source as stored, checked by the rules shared by create and update;
 * `at` prefixes the field names ("issuer." in a create, nothing in an
 * update). Discovery's rule on the issuer URL is the caller's.
 */
function validateKeySource(keys: NonNullable<IssuerKeysInput>, at: string): KeySourceColumns {
  if ("discovery" in keys) {
    if (!keys.discovery) {
      throw invalid(`${at}discovery`, "must be true when set (or set jwks_url or static_jwks)");
    }
    return { keySource: "discovery", jwksUrl: null, staticJwks: null };
  }
  if ("jwksUrl" in keys) {
    const field = `${at}jwks_url`;
    validateText(keys.jwksUrl, field);
    const problem =
      keys.jwksUrl === ""
        ? "is required when chosen: the URL of the issuer's JWKS"
        : fetchableUrlProblem(keys.jwksUrl);
    if (problem !== undefined) throw invalid(field, problem);
    if (keys.jwksUrl.length > MAX_URL_LENGTH) {
      throw invalid(field, `must be at most ${MAX_URL_LENGTH} characters`);
    }
    return { keySource: "jwks_url", jwksUrl: keys.jwksUrl, staticJwks: null };
  }
  return {
    keySource: "static",
    jwksUrl: null,
    staticJwks: validateStaticJwks(keys.staticJwks, `${at}static_jwks`),
  };
}

/**
 * Trusts a JWT issuer for AuthService.ExchangeToken (global admins only).
 * Its name and issuer URL are unique (ALREADY_EXISTS). Discovery needs an
 * https issuer URL (http only on the loopback); a JWKS URL likewise; static
 * keys must be public keys of type RSA, EC or OKP.
 */
export async function createTrustedIssuer(
  domain: DomainDeps,
  caller: Caller,
  input: CreateIssuerInput,
): Promise<TrustedIssuerRow> {
  const region = resolveAndNoteHome(domain, caller);
  const principal = requirePrincipal(caller.principal);
  requireGlobalAdmin(principal);
  const name = validateLabel(input.name, "issuer.name");
  if (input.keys === undefined) {
    throw invalid("issuer.keys", "is required: one of discovery, jwks_url or static_jwks");
  }
  const source = validateKeySource(input.keys, "issuer.");
  const issuerUrl = validateIssuerUrl(input.issuerUrl, source.keySource === "discovery");
  const audiences = validateAudiences(input.audiences, "issuer.audiences");
  const id = randomUUID();
  try {
    return await inTransaction(region.db, async (tx) => {
      const row = await insertIssuer(tx, {
        id,
        name,
        issuerUrl,
        audiences,
        ...source,
        createdBy: principal.tokenId,
      });
      await recordInTransaction(tx, caller.audit, { issuer: issuerUrl });
      return row;
    });
  } catch (err) {
    if (pgErrorCode(err) === "23505") {
      throw alreadyExists(
        `a trusted issuer named ${JSON.stringify(name)} or with issuer_url ${JSON.stringify(issuerUrl)} already exists`,
      );
    }
    throw err;
  }
}

/** Trusted issuers, by name. Any admin may list them, to bind identities to its projects. */
export async function listTrustedIssuers(
  domain: DomainDeps,
  caller: Caller,
  input: PageInput,
): Promise<{ issuers: TrustedIssuerRow[] } & ListPage> {
  const region = resolveAndNoteHome(domain, caller);
  requireAdmin(caller.principal);
  const page = openPage(input, "trusted_issuers", {}, ["text", "uuid"]);
  const found = await queryIssuers(region.db, page);
  return { issuers: found.rows, ...page.listPage(found) };
}

export interface UpdateIssuerInput {
  issuerId: string;
  /** Unset: unchanged. */
  name?: string | undefined;
  /** Unset: unchanged; set: replaces them (at least one). */
  audiences?: readonly string[] | undefined;
  /** Unset: unchanged; set: replaces the key source. */
  keys?: IssuerKeysInput;
}

/**
 * Changes an issuer in place (global admins only): its name, audiences or
 * key source, validated as by createTrustedIssuer. The issuer URL never
 * changes: it is the identity of the tokens (another URL is another issuer).
 *
 * Bindings and the tokens exchanged through them stay: a token whose JWT was
 * signed by a key now removed, or named an audience now removed, lives out
 * its life (at most 1 hour); revoking them is the admin's call. The next
 * exchange on any replica sees the change, since every exchange reads the
 * issuer's row and the key cache keys its sets by the row's key source
 * (KeyCache); `onChanged` is called after commit so that this replica also
 * drops what it cached (a fetched set refetched even when the source is the
 * same URL).
 */
export async function updateTrustedIssuer(
  domain: DomainDeps,
  caller: Caller,
  input: UpdateIssuerInput,
  onChanged: (issuerId: string) => void,
): Promise<TrustedIssuerRow> {
  const region = resolveAndNoteHome(domain, caller);
  requireGlobalAdmin(requirePrincipal(caller.principal));
  const id = validateUuid(input.issuerId, "issuer_id");
  const name = input.name === undefined ? undefined : validateLabel(input.name, "name");
  const audiences =
    input.audiences === undefined ? undefined : validateAudiences(input.audiences, "audiences");
  const source = input.keys === undefined ? undefined : validateKeySource(input.keys, "");
  let row: TrustedIssuerRow;
  try {
    row = await inTransaction(region.db, async (tx) => {
      // FOR UPDATE: a concurrent delete or update waits for this one.
      const issuer = await lockIssuer(tx, id, "update");
      if (issuer === undefined) throw issuerNotFound(id);
      noteFacts(caller.audit, { issuer: issuer.issuerUrl });
      if (source?.keySource === "discovery") {
        const problem = fetchableUrlProblem(issuer.issuerUrl);
        if (problem !== undefined) {
          throw invalid(
            "discovery",
            `cannot be chosen: it fetches <issuer_url>/.well-known/openid-configuration, and the issuer_url ${problem}`,
          );
        }
      }
      const set = {
        ...(name !== undefined && { name }),
        ...(audiences !== undefined && { audiences }),
        ...source,
      };
      // Nothing set: the issuer as it is (the call audited all the same).
      const updated = Object.keys(set).length === 0 ? issuer : await updateIssuerRow(tx, id, set);
      if (updated === undefined) throw issuerNotFound(id);
      await recordInTransaction(tx, caller.audit, {});
      return updated;
    });
  } catch (err) {
    if (pgErrorCode(err) === "23505") {
      throw alreadyExists(`a trusted issuer named ${JSON.stringify(name)} already exists`);
    }
    throw err;
  }
  // Audiences are not cached (each exchange reads them from the row): only
  // a key source set calls for the keys to be dropped.
  if (source !== undefined) onChanged(row.id);
  return row;
}

/**
 * Stops trusting an issuer (global admins only): deletes its bindings and
 * revokes every token exchanged through them, as DeleteIdentityBinding
 * does, in one transaction; `onRevoked` is called after commit (the
 * RevokeToken path: caches forget, streams end, replicas told).
 */
export async function deleteTrustedIssuer(
  domain: DomainDeps,
  caller: Caller,
  input: { issuerId: string },
  onRevoked: (tokenIds: readonly string[]) => void,
): Promise<{ issuer: TrustedIssuerRow; deletedBindings: number; revokedTokens: number }> {
  const region = resolveAndNoteHome(domain, caller);
  requireGlobalAdmin(requirePrincipal(caller.principal));
  const id = validateUuid(input.issuerId, "issuer_id");
  const result = await inTransaction(region.db, async (tx) => {
    const issuer = await lockIssuer(tx, id, "update");
    if (issuer === undefined) throw issuerNotFound(id);
    noteFacts(caller.audit, { issuer: issuer.issuerUrl });
    const bindings = await lockBindingsOfIssuer(tx, id);
    const revoked = await revokeBindingTokens(
      tx,
      caller,
      bindings.map((b) => b.id),
    );
    await deleteBindingRows(
      tx,
      bindings.map((b) => b.id),
    );
    const deleted = await deleteIssuerRow(tx, id);
    if (deleted === undefined) throw issuerNotFound(id);
    await recordInTransaction(tx, caller.audit, {});
    return { issuer: deleted, deletedBindings: bindings.length, revoked };
  });
  if (result.revoked.length > 0) onRevoked(result.revoked);
  return {
    issuer: result.issuer,
    deletedBindings: result.deletedBindings,
    revokedTokens: result.revoked.length,
  };
}
