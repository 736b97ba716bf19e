import type { StoredCondition } from "../../db/schema.ts";
import { invalid } from "../errors.ts";
import { validateText } from "../validation.ts";

/**
 * Claim conditions of identity bindings: how one is written (validated when
 * a binding is created) and when a JWT's claims satisfy it.
 *
 * - `claim` is a top-level claim name ("sub", "repository") or an RFC 6901
 *   JSON Pointer starting with "/" ("/kubernetes.io/namespace": a pointer's
 *   segments are split on "/" only, so a key holding dots is one segment;
 *   "~1" is a "/" inside a key, "~0" a "~").
 * - `value` is compared exactly, or as a glob: "*" any run of characters
 *   (none included, "/" and ":" included), "?" exactly one; everything else
 *   is itself (no classes, no escapes).
 * - A list claim (like "aud") matches when one of its items does; a number
 *   or boolean is compared as its JSON text ("42", "true"); a missing claim,
 *   null, or an object never matches.
 */

/** Most conditions on one binding. */
export const MAX_CONDITIONS = 32;
const MAX_CLAIM_LENGTH = 255;
const MAX_VALUE_LENGTH = 1024;

/** Validates a binding's conditions; the fields are named as in the request. */
export function validateConditions(
  conditions: readonly StoredCondition[],
  field = "binding.conditions",
): StoredCondition[] {
  if (conditions.length === 0) {
    throw invalid(field, "must hold at least one condition (a claim and the value it must have)");
  }
  if (conditions.length > MAX_CONDITIONS) {
    throw invalid(
      field,
      `must hold at most ${MAX_CONDITIONS} conditions (got ${conditions.length})`,
    );
  }
  return conditions.map((c, i) => {
    const at = `${field}[${i}]`;
    validateText(c.claim, `${at}.claim`);
    validateText(c.value, `${at}.value`);
    if (c.claim === "") {
      throw invalid(
        `${at}.claim`,
        'is required: a claim name ("sub") or a JSON Pointer ("/kubernetes.io/namespace")',
      );
    }
    if (c.claim.length > MAX_CLAIM_LENGTH) {
      throw invalid(`${at}.claim`, `must be at most ${MAX_CLAIM_LENGTH} characters`);
    }
    if (c.claim.startsWith("/") && /~(?![01])/.test(c.claim)) {
      throw invalid(
        `${at}.claim`,
        'is a JSON Pointer (it starts with "/"): "~" must be followed by 0 or 1 (RFC 6901)',
      );
    }
    if (c.value.length > MAX_VALUE_LENGTH) {
      throw invalid(`${at}.value`, `must be at most ${MAX_VALUE_LENGTH} characters`);
    }
    if (c.value === "") {
      throw invalid(`${at}.value`, "is required (an empty value would match nothing useful)");
    }
    return { claim: c.claim, value: c.value, glob: c.glob };
  });
}

/** The claim a condition names: undefined when missing. */
export function claimAt(claims: Record<string, unknown>, claim: string): unknown {
  if (!claim.startsWith("/")) return Object.hasOwn(claims, claim) ? claims[claim] : undefined;
  let at: unknown = claims;
  for (const raw of claim.slice(1).split("/")) {
    const key = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (Array.isArray(at)) {
      if (!/^(0|[1-9][0-9]*)$/.test(key)) return undefined;
      at = at[Number(key)];
    } else if (at !== null && typeof at === "object") {
      if (!Object.hasOwn(at, key)) return undefined;
      at = (at as Record<string, unknown>)[key];
    } else {
      return undefined;
    }
  }
  return at;
}

/** A scalar claim as the text a condition compares with; undefined for what never matches. */
function asText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return JSON.stringify(value);
  return undefined;
}

/** A glob as an anchored regular expression over code points. */
export function globToRegExp(glob: string): RegExp {
  let source = "";
  for (const char of glob) {
    if (char === "*") source += "[^]*";
    else if (char === "?") source += "[^]";
    // Only syntax characters (and "/") may be escaped in a `u` pattern.
    else source += char.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`^${source}$`, "u");
}

/** Whether one condition holds for these claims. */
export function conditionHolds(claims: Record<string, unknown>, c: StoredCondition): boolean {
  const value = claimAt(claims, c.claim);
  const items = Array.isArray(value) ? value : [value];
  const test = c.glob
    ? (text: string) => globToRegExp(c.value).test(text)
    : (text: string) => text === c.value;
  return items.some((item) => {
    const text = asText(item);
    return text !== undefined && test(text);
  });
}

/** Whether every condition of a binding holds. */
export function bindingMatches(
  claims: Record<string, unknown>,
  conditions: readonly StoredCondition[],
): boolean {
  return conditions.length > 0 && conditions.every((c) => conditionHolds(claims, c));
}
