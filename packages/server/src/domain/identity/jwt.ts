import {
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type JWTPayload,
  type JWTVerifyResult,
  jwtVerify,
} from "jose";
import type { TrustedIssuerRow } from "../../db/schema.ts";
import { textProblem } from "../validation.ts";
import { type KeyCache, KeyRefusal } from "./keys.ts";

/**
 * JWT verification for AuthService.ExchangeToken: the checks, in order, each
 * refusal with the reason the audit trail records (the caller never sees it).
 *
 * 1. At most MAX_JWT_BYTES, a compact JWS whose header `alg` is one of
 *    ALGORITHMS: never `none`, never HMAC (a public key used as an HMAC
 *    secret would "verify" anything its holder signs).
 * 2. `iss` names a trusted issuer (exactly its issuer_url).
 * 3. The signature verifies with one of the issuer's keys (keys.ts).
 * 4. `aud` holds one of the issuer's audiences; `exp` is present and not
 *    past, `nbf` not in the future, `iat` not in the future, each with
 *    CLOCK_SKEW_S seconds of allowance.
 */

export const ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "EdDSA",
] as const;
export const MAX_JWT_BYTES = 16 * 1024;
export const CLOCK_SKEW_S = 60;
/** Longest issuer or subject recorded in the audit trail (they come from an unverified JWT). */
const MAX_RECORDED = 255;

/** A JWT refused: `reason` is for the audit trail; `issuer`/`subject` what the JWT claimed, when readable. */
export class JwtRefusal extends Error {
  override readonly name = "JwtRefusal";
  constructor(
    readonly reason: string,
    readonly claimed: { issuer?: string; subject?: string } = {},
  ) {
    super(reason);
  }
}

/** A claim from an unverified JWT, fit for the audit trail: a string, cut short, storable. */
export function recordable(value: unknown): string | undefined {
  if (typeof value !== "string" || value === "") return undefined;
  const cut = Array.from(value).slice(0, MAX_RECORDED).join("");
  return textProblem(cut) === undefined ? cut : undefined;
}

export interface VerifiedJwt {
  issuer: TrustedIssuerRow;
  claims: JWTPayload & { exp: number };
}

/**
 * Verifies a JWT against the trusted issuers (`findIssuer` looks one up by
 * its exact `iss`) and their keys. Throws JwtRefusal.
 */
export async function verifyJwt(
  jwt: string,
  findIssuer: (iss: string) => Promise<TrustedIssuerRow | undefined>,
  keys: KeyCache,
  now: () => number = Date.now,
): Promise<VerifiedJwt> {
  if (Buffer.byteLength(jwt, "utf8") > MAX_JWT_BYTES) {
    throw new JwtRefusal(`JWT too large (over ${MAX_JWT_BYTES} bytes)`);
  }
  let alg: unknown;
  let unverified: JWTPayload;
  try {
    alg = decodeProtectedHeader(jwt).alg;
    unverified = decodeJwt(jwt);
  } catch {
    throw new JwtRefusal("malformed JWT");
  }
  const claimed = {
    ...(recordable(unverified.iss) !== undefined && { issuer: recordable(unverified.iss) }),
    ...(recordable(unverified.sub) !== undefined && { subject: recordable(unverified.sub) }),
  };
  if (typeof alg !== "string" || !(ALGORITHMS as readonly string[]).includes(alg)) {
    const shown = typeof alg === "string" && /^[A-Za-z0-9_+-]{1,16}$/.test(alg) ? ` (${alg})` : "";
    throw new JwtRefusal(`algorithm not allowed${shown}`, claimed);
  }
  if (typeof unverified.iss !== "string" || unverified.iss === "") {
    throw new JwtRefusal("no iss claim", claimed);
  }
  const issuer = await findIssuer(unverified.iss);
  if (issuer === undefined) throw new JwtRefusal("issuer not trusted", claimed);
  const options = {
    issuer: issuer.issuerUrl,
    audience: issuer.audiences,
    algorithms: [...ALGORITHMS],
    clockTolerance: CLOCK_SKEW_S,
    requiredClaims: ["exp"],
    currentDate: new Date(now()),
  };
  let result: JWTVerifyResult;
  try {
    result = await jwtVerify(jwt, keys.keysOf(issuer), options);
  } catch (e) {
    if (!(e instanceof errors.JWKSMultipleMatchingKeys)) throw new JwtRefusal(reasonOf(e), claimed);
    result = await tryEach(jwt, e, options, claimed);
  }
  const claims = result.payload;
  if (typeof claims.iat === "number" && claims.iat > now() / 1000 + CLOCK_SKEW_S) {
    throw new JwtRefusal("issued in the future (iat)", claimed);
  }
  if (typeof claims.exp !== "number") throw new JwtRefusal("no exp claim", claimed);
  return { issuer, claims: claims as VerifiedJwt["claims"] };
}

/**
 * A JWT without a key id, when several of the issuer's keys could have
 * signed it: each is tried (jose's error iterates them).
 */
async function tryEach(
  jwt: string,
  candidates: errors.JWKSMultipleMatchingKeys,
  options: Parameters<typeof jwtVerify>[2],
  claimed: JwtRefusal["claimed"],
): Promise<JWTVerifyResult> {
  let last: unknown;
  for await (const key of candidates) {
    try {
      return await jwtVerify(jwt, key, options);
    } catch (e) {
      last = e;
      if (!(e instanceof errors.JWSSignatureVerificationFailed)) break;
    }
  }
  throw new JwtRefusal(reasonOf(last), claimed);
}

/** What a verification error means, for the audit trail. */
export function reasonOf(e: unknown): string {
  if (e instanceof KeyRefusal) return e.message;
  if (e instanceof errors.JWSSignatureVerificationFailed) return "signature does not verify";
  if (e instanceof errors.JWTExpired) return "expired";
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.reason === "missing") return `no ${e.claim} claim`;
    if (e.reason === "invalid") return `${e.claim} claim not valid`;
    switch (e.claim) {
      case "nbf":
        return "not yet valid (nbf)";
      case "iat":
        return "issued in the future (iat)";
      case "aud":
        return "audience not accepted";
      case "iss":
        return "issuer mismatch";
      default:
        return `claim ${e.claim} not valid`;
    }
  }
  if (e instanceof errors.JOSEAlgNotAllowed) return "algorithm not allowed";
  if (e instanceof errors.JWKSNoMatchingKey) return "unknown key id";
  if (e instanceof errors.JWSInvalid || e instanceof errors.JWTInvalid) return "malformed JWT";
  return "JWT does not verify";
}
