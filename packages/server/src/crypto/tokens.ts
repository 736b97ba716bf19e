import { createHash, randomBytes } from "node:crypto";
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

export function hashToken(value: string): Uint8Array {
  return createHash("sha256").update(value, "utf8").digest();
}

export function displayPrefix(value: string): string {
  return value.slice(0, TOKEN_PREFIX.length + 4);
}
