import { createHash, randomBytes, randomInt, randomUUID } from "node:crypto";
import { crc32 } from "node:zlib";

/**
 * Access tokens: `coffer_` + 43 base62 characters of 256 random bits + 6
 * base62 characters of a CRC-32 of those. The fixed prefix and checksum let
 * secret scanners recognise a leaked Coffer token with no false positives,
 * and let the server refuse garbage without a database lookup.
 */
export const TOKEN_PREFIX = "coffer_";
const BODY = 43;
const CHECK = 6;
const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const TOKEN_RE = new RegExp(`^${TOKEN_PREFIX}[0-9A-Za-z]{${BODY + CHECK}}$`);

function base62(n: bigint, width: number): string {
  let out = "";
  for (let i = 0; i < width; i++) {
    out = ALPHABET[Number(n % 62n)] + out;
    n /= 62n;
  }
  return out;
}

function checksum(body: string): string {
  return base62(BigInt(crc32(body)), CHECK);
}

export interface NewToken {
  /** The bearer value: shown once, never stored. */
  value: string;
  /** What is stored and listed to recognise the token: `coffer_` and 4 characters. */
  prefix: string;
  hash: Uint8Array;
}

export function generateToken(): NewToken {
  return tokenFromSecret(randomBytes(32));
}

/** A token from 32 given bytes (for COFFER_BOOTSTRAP_TOKEN-like seeding and tests). */
export function tokenFromSecret(secret: Uint8Array): NewToken {
  const body = base62(BigInt(`0x${Buffer.from(secret).toString("hex")}`), BODY);
  const value = `${TOKEN_PREFIX}${body}${checksum(body)}`;
  return { value, prefix: displayPrefix(value), hash: hashToken(value) };
}

/**
 * A token from a value given by an operator (COFFER_BOOTSTRAP_TOKEN), so that
 * automation can know the admin token in advance. Refuses a value that is not
 * a well-formed Coffer token; the error never repeats the value.
 */
export function tokenFromValue(value: string): NewToken {
  if (!isWellFormedToken(value)) {
    throw new Error(
      `not a Coffer token: expected ${TOKEN_PREFIX} followed by ${BODY + CHECK} letters and digits ending in a checksum`,
    );
  }
  return { value, prefix: displayPrefix(value), hash: hashToken(value) };
}

/** Whether a string is shaped like a Coffer token with a valid checksum. */
export function isWellFormedToken(value: string): boolean {
  if (!TOKEN_RE.test(value)) return false;
  const body = value.slice(TOKEN_PREFIX.length, TOKEN_PREFIX.length + BODY);
  return value.endsWith(checksum(body));
}

/**
 * The least number of different characters a token's 43-character body may
 * hold. A body drawn from 256 random bits holds about 31; the chance that
 * one holds fewer than 15 is below 5e-13 (computed exactly over the 42
 * characters after the first, which is almost always 0 or 1).
 */
export const MIN_DISTINCT_CHARS = 15;
/**
 * The longest run of body characters stepping evenly through the alphabet
 * (repeats such as `0000`, sequences such as `abcd` or `9876`, or any other
 * constant step) a token may hold. A random body holds a run of 9 or more
 * with a chance of about 1e-11 (35 places × 62^-7).
 */
export const MAX_EVEN_RUN = 8;

/**
 * Why a well-formed token value could not have come from a random
 * generator, or undefined when nothing suggests that. The rule is
 * deterministic and statistical: it refuses placeholders, typed values and
 * values derived from zeroed or patterned bytes (an all-zero secret encodes
 * to a body of 43 `0`, which carries a valid checksum), while a token from
 * {@link generateToken} fails it with a chance below 2e-11. It cannot prove
 * that a value is random: only how it was made can. The reason never
 * repeats the value.
 */
export function weakTokenReason(value: string): string | undefined {
  const body = value.slice(TOKEN_PREFIX.length, TOKEN_PREFIX.length + BODY);
  const distinct = new Set(body).size;
  if (distinct < MIN_DISTINCT_CHARS) {
    return `its ${BODY} random characters hold only ${distinct} different characters (at least ${MIN_DISTINCT_CHARS} required; 256 random bits give about 31)`;
  }
  const run = longestEvenRun(body);
  if (run > MAX_EVEN_RUN) {
    return `it holds ${run} characters in a row that repeat or step evenly through the alphabet (at most ${MAX_EVEN_RUN} allowed)`;
  }
  return undefined;
}

/** The longest stretch of `body` whose alphabet positions differ by one constant step. */
function longestEvenRun(body: string): number {
  const at = [...body].map((c) => ALPHABET.indexOf(c));
  let longest = Math.min(at.length, 2);
  let run = 2;
  for (let i = 2; i < at.length; i++) {
    const same = (at[i] ?? 0) - (at[i - 1] ?? 0) === (at[i - 1] ?? 0) - (at[i - 2] ?? 0);
    run = same ? run + 1 : 2;
    if (run > longest) longest = run;
  }
  return longest;
}

/**
 * Scaleway-style API keys, for Scaleway's own clients (SDKs, scw CLI,
 * Terraform), which check a key's shape before sending it: the access key id
 * must be `SCW` and 17 capital letters or digits, the secret key a UUID. Only
 * the secret key is sent, and it is the bearer value: a random UUID v4 (122
 * random bits, enough for a fast hash as for Coffer tokens). The access key
 * id is not secret; it is what the token is recognised by.
 */
export const ACCESS_KEY_PREFIX = "SCW";
const ACCESS_KEY_BODY = 17;
const ACCESS_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/** The UUIDs randomUUID makes (version 4, RFC 9562 variant), in either case. */
const UUID_V4_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

export interface NewScalewayKey extends NewToken {
  /** `SCW` and 17 characters of [A-Z0-9]; also the stored prefix. */
  accessKey: string;
}

/** A Scaleway-style key: a random access key id and a random UUID v4 secret key (the value). */
export function generateScalewayKey(): NewScalewayKey {
  let accessKey = ACCESS_KEY_PREFIX;
  for (let i = 0; i < ACCESS_KEY_BODY; i++) {
    // randomInt draws without modulo bias.
    accessKey += ACCESS_KEY_ALPHABET[randomInt(ACCESS_KEY_ALPHABET.length)];
  }
  const value = randomUUID().toLowerCase();
  return { value, accessKey, prefix: accessKey, hash: hashToken(value) };
}

/**
 * The form of a presented bearer value that is hashed and looked up: a
 * well-formed Coffer token as it is (its letters' case is part of it), a
 * UUID v4 (a Scaleway-style secret key) in lower case, so that one typed in
 * capitals works. Undefined for anything else, which is refused without a
 * lookup.
 */
export function canonicalToken(value: string): string | undefined {
  if (isWellFormedToken(value)) return value;
  if (isScalewaySecretKey(value)) return value.toLowerCase();
  return undefined;
}

/** Whether a value is shaped like a Scaleway-style secret key (a UUID v4, either case). */
export function isScalewaySecretKey(value: string): boolean {
  return UUID_V4_RE.test(value);
}

/**
 * SHA-256 of a token value, as stored. Give it the canonical value
 * ({@link canonicalToken}): a secret key in capitals hashes differently.
 */
export function hashToken(value: string): Uint8Array {
  return createHash("sha256").update(value, "utf8").digest();
}

export function displayPrefix(value: string): string {
  return value.slice(0, TOKEN_PREFIX.length + 4);
}
