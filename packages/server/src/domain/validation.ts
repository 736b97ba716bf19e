import { crc32 } from "node:zlib";
import { invalid } from "./errors.ts";

/**
 * Field rules from SPEC section 2, as pure functions. Each either returns the
 * value to store (normalised where the spec says so) or throws an
 * `invalid_argument` DomainError whose message names the field, as the client
 * spelled it, and the rule it broke.
 *
 * Names, paths, tags and ids may be echoed in messages: they are metadata the
 * caller just sent. Nothing here ever sees payload bytes.
 */

/** Longest name, in characters. */
export const MAX_NAME_LENGTH = 255;
/** Longest path, in characters, after normalisation. */
export const MAX_PATH_LENGTH = 1024;
/** Most segments in a path. */
export const MAX_PATH_SEGMENTS = 32;
/** Most distinct tags on a secret. */
export const MAX_TAGS = 64;
/** Longest tag, in Unicode code points. */
export const MAX_TAG_LENGTH = 128;
/** Longest description, in Unicode code points. */
export const MAX_DESCRIPTION_LENGTH = 1024;
/** Highest revision number a selector may name (the largest int4). */
export const MAX_REVISION = 2 ** 31 - 1;
/** Shortest ephemeral time to live. */
export const MIN_TIME_TO_LIVE_MS = 1000;
/** Longest ephemeral time to live. */
export const MAX_TIME_TO_LIVE_MS = 365 * 24 * 60 * 60 * 1000;
/** Page size used when a list request leaves it at 0. */
export const DEFAULT_PAGE_SIZE = 50;
/** Largest page size a list request may ask for. */
export const MAX_PAGE_SIZE = 1000;
/** Highest page number a list request may ask for. */
export const MAX_PAGE = 1_000_000;

const NAME_RULE = `must be 1-${MAX_NAME_LENGTH} characters of letters, digits, ".", "_", "-"`;
const NAME_CHAR = /^[A-Za-z0-9._-]$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const REVISION_RULE = `a revision number (1 to ${MAX_REVISION}), "latest" or "latest_enabled"`;

/**
 * Quotes a caller-supplied string for a message: escaped so control characters
 * and quotes cannot garble the message, and shortened so a megabyte of input
 * does not become a megabyte of error.
 */
function quote(value: string, max = 80): string {
  const chars = Array.from(value.length > max * 2 ? value.slice(0, max * 2) : value);
  return JSON.stringify(chars.length > max ? `${chars.slice(0, max).join("")}...` : value);
}

/**
 * The rule a string breaks when it cannot be stored as Postgres text, or
 * undefined. Postgres text cannot hold U+0000 at all (it fails the whole
 * statement with "invalid byte sequence"), and a lone UTF-16 surrogate has
 * no UTF-8 encoding: the drivers would silently store U+FFFD instead, so
 * what was read back would differ from what was sent.
 */
export function textProblem(value: string): string | undefined {
  const nul = value.indexOf("\u0000");
  if (nul !== -1) {
    return `must not contain the NUL character (U+0000) (found at position ${nul + 1})`;
  }
  const lone = LONE_SURROGATE.exec(value);
  if (lone !== null) {
    const at = lone.index;
    return `must be valid Unicode text (lone surrogate U+${value.charCodeAt(at).toString(16).toUpperCase()} at position ${at + 1})`;
  }
  return undefined;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Checks that a string can be stored as Postgres text (see textProblem). Every
 * free-text field (descriptions, labels, filters) goes through it; the call
 * chain also applies it to every string of every request.
 * @returns the value, unchanged.
 */
export function validateText(value: string, field: string): string {
  const problem = textProblem(value);
  if (problem !== undefined) throw invalid(field, problem);
  return value;
}

/** `"é" (U+00E9)`: the code point is shown because some characters are invisible. */
function describeChar(char: string): string {
  const code = char.codePointAt(0) ?? 0;
  return `${JSON.stringify(char)} (U+${code.toString(16).toUpperCase().padStart(4, "0")})`;
}

/** Counts Unicode code points, which is what "characters" means in the spec. */
function codePointLength(value: string): number {
  let count = 0;
  for (const _ of value) count++;
  return count;
}

/** The rule a name breaks, or undefined when it is a valid name. */
function nameProblem(value: string): string | undefined {
  if (value.length > MAX_NAME_LENGTH) {
    return `${NAME_RULE} (got ${codePointLength(value)} characters)`;
  }
  let position = 0;
  for (const char of value) {
    position++;
    if (!NAME_CHAR.test(char)) {
      return `${NAME_RULE} (got ${quote(value)}: character ${describeChar(char)} at position ${position} is not allowed)`;
    }
  }
  // "." and ".." would read as relative path steps wherever names become
  // file names or path segments (the agent writes secrets to disk).
  if (value === "." || value === "..") return `must not be "." or ".." (got ${quote(value)})`;
  return undefined;
}

/**
 * Checks a secret name: 1-255 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
 * @returns the name, unchanged.
 */
export function validateName(value: string, field = "name"): string {
  if (value === "")
    throw invalid(
      field,
      `is required: 1-${MAX_NAME_LENGTH} characters of letters, digits, ".", "_", "-"`,
    );
  const problem = nameProblem(value);
  if (problem !== undefined) throw invalid(field, problem);
  return value;
}

/**
 * Checks and normalises a folder path: `""` becomes `/`; otherwise it must
 * start with `/`, one trailing slash is dropped (except on the root), and
 * every segment follows the name rule. At most 32 segments and 1024
 * characters once normalised.
 * @returns the normalised path, `/` or `/seg(/seg)*`.
 */
export function normalizePath(value: string, field = "path"): string {
  if (value === "" || value === "/") return "/";
  if (!value.startsWith("/")) throw invalid(field, `must start with "/" (got ${quote(value)})`);
  const path = value.endsWith("/") ? value.slice(0, -1) : value;
  if (path.length > MAX_PATH_LENGTH) {
    throw invalid(
      field,
      `must be at most ${MAX_PATH_LENGTH} characters (got ${codePointLength(path)})`,
    );
  }
  // Only one trailing slash is forgiven, so "//" and "/a//" still reach the
  // empty-segment check below instead of collapsing silently.
  const segments = path.slice(1).split("/");
  if (segments.length > MAX_PATH_SEGMENTS) {
    throw invalid(
      field,
      `must have at most ${MAX_PATH_SEGMENTS} segments (got ${segments.length})`,
    );
  }
  for (const [index, segment] of segments.entries()) {
    if (segment === "") {
      throw invalid(field, `must not contain empty segments ("//") (got ${quote(value)})`);
    }
    const problem = nameProblem(segment);
    if (problem !== undefined) throw invalid(field, `segment ${index + 1} ${problem}`);
  }
  return path;
}

// A tag character is "printable" unless it is a C0 control (U+0000-U+001F),
// DEL (U+007F), a C1 control (U+0080-U+009F), or a lone surrogate (which has
// no UTF-8 encoding, so could not be stored or sent back). Letters of any
// script, symbols, emoji and inner spaces are all fine; a tag made only of
// whitespace is rejected because it would look empty in every listing.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const TAG_FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\p{Cs}]/u;
const ONLY_WHITESPACE = /^\s+$/u;
const TAG_RULE = `must be 1-${MAX_TAG_LENGTH} printable characters`;

/**
 * Checks tags: each 1-128 printable characters (no control characters, not
 * only whitespace). Duplicates are folded by exact comparison (no case
 * folding or Unicode normalisation, so a tag comes back as it was sent).
 * At most 64 remain after folding.
 * @returns the distinct tags, sorted by UTF-16 code units (a stable order
 *   regardless of locale).
 */
export function normalizeTags(values: readonly string[], field = "tags"): string[] {
  const distinct = new Set<string>();
  for (const [index, tag] of values.entries()) {
    const tagField = `${field}[${index}]`;
    if (tag === "") throw invalid(tagField, `${TAG_RULE} (got an empty string)`);
    const length = codePointLength(tag);
    if (length > MAX_TAG_LENGTH) throw invalid(tagField, `${TAG_RULE} (got ${length} characters)`);
    let position = 0;
    for (const char of tag) {
      position++;
      if (TAG_FORBIDDEN.test(char)) {
        throw invalid(
          tagField,
          `${TAG_RULE} (character ${describeChar(char)} at position ${position} is a control character)`,
        );
      }
    }
    if (ONLY_WHITESPACE.test(tag)) throw invalid(tagField, `${TAG_RULE}, not only whitespace`);
    distinct.add(tag);
  }
  if (distinct.size > MAX_TAGS) {
    throw invalid(field, `must have at most ${MAX_TAGS} distinct tags (got ${distinct.size})`);
  }
  return [...distinct].sort();
}

/**
 * Checks a description: at most 1024 characters, counted as Unicode code
 * points so that non-Latin text gets the same allowance as ASCII.
 * @returns the description, unchanged.
 */
export function validateDescription(value: string, field = "description"): string {
  validateText(value, field);
  // A string of at most N UTF-16 units has at most N code points: skip counting.
  if (value.length <= MAX_DESCRIPTION_LENGTH) return value;
  const length = codePointLength(value);
  if (length > MAX_DESCRIPTION_LENGTH) {
    throw invalid(field, `must be at most ${MAX_DESCRIPTION_LENGTH} characters (got ${length})`);
  }
  return value;
}

/**
 * Checks a UUID in canonical 8-4-4-4-12 hexadecimal form (either case).
 * @returns the UUID in lower case, the form stored and compared.
 */
export function validateUuid(value: string, field: string): string {
  if (value === "") throw invalid(field, "is required");
  if (!UUID.test(value)) {
    throw invalid(
      field,
      `must be a UUID such as "0b6d4f2e-8c1a-4e3b-9f7d-2a5c6e8b1d04" (got ${quote(value)})`,
    );
  }
  return value.toLowerCase();
}

/** Which version a request means: a revision number, the highest, or the highest enabled. */
export type RevisionSelector =
  | { kind: "number"; revision: number }
  | { kind: "latest" }
  | { kind: "latest_enabled" };

/**
 * Parses a revision selector: a positive decimal integer up to 2^31-1 (no
 * sign, no leading zeros, so each revision has one spelling), `latest` or
 * `latest_enabled`.
 */
export function parseRevision(value: string, field = "revision"): RevisionSelector {
  if (value === "") throw invalid(field, 'is required: a number, "latest" or "latest_enabled"');
  if (value === "latest") return { kind: "latest" };
  if (value === "latest_enabled") return { kind: "latest_enabled" };
  // The length cap keeps Number() exact before the range check.
  if (/^[1-9][0-9]{0,15}$/.test(value)) {
    const revision = Number(value);
    if (revision <= MAX_REVISION) return { kind: "number", revision };
  }
  throw invalid(field, `must be ${REVISION_RULE} (got ${quote(value)})`);
}

/**
 * Checks an ephemeral policy's time to live: 1 second to 365 days inclusive,
 * in whole milliseconds.
 * @returns the time to live in milliseconds, unchanged.
 */
export function validateTimeToLive(ms: number, field = "ephemeral_policy.time_to_live"): number {
  if (!Number.isFinite(ms) || ms < MIN_TIME_TO_LIVE_MS || ms > MAX_TIME_TO_LIVE_MS) {
    throw invalid(field, `must be between 1 second and 365 days (got ${ms} ms)`);
  }
  if (!Number.isInteger(ms)) {
    throw invalid(field, `must be a whole number of milliseconds (got ${ms} ms)`);
  }
  return ms;
}

/**
 * Turns a list request's page (1-based, 0 meaning 1) and page size (0 meaning
 * 50, at most 1000) into an SQL offset and limit. Pages stop at 1,000,000 so
 * that a request cannot ask the database to skip an unbounded number of rows.
 */
export function validatePage(page: number, pageSize: number): { offset: number; limit: number } {
  if (!Number.isInteger(pageSize) || pageSize < 0 || pageSize > MAX_PAGE_SIZE) {
    throw invalid(
      "page_size",
      `must be a whole number from 1 to ${MAX_PAGE_SIZE}, or 0 for the default of ${DEFAULT_PAGE_SIZE} (got ${pageSize})`,
    );
  }
  if (!Number.isInteger(page) || page < 0 || page > MAX_PAGE) {
    throw invalid(
      "page",
      `must be a whole number from 1 to ${MAX_PAGE}, or 0 for the first page (got ${page})`,
    );
  }
  const limit = pageSize === 0 ? DEFAULT_PAGE_SIZE : pageSize;
  const first = page === 0 ? 1 : page;
  return { offset: (first - 1) * limit, limit };
}

/**
 * Computes the CRC-32 (IEEE) of a payload and, when the request carried one,
 * checks it. A mismatch means the bytes were damaged or built wrongly on the
 * way, so nothing must be stored. The computed checksum is not secret and
 * helps the client find which side is wrong.
 * @returns the computed checksum, an unsigned 32-bit integer.
 */
export function checkCrc32(
  data: Uint8Array,
  expected: number | undefined,
  field = "data_crc32",
): number {
  const computed = crc32(data) >>> 0;
  if (expected === undefined) return computed;
  if (!Number.isInteger(expected) || expected < 0 || expected > 0xffff_ffff) {
    throw invalid(field, `must be an unsigned 32-bit integer (got ${expected})`);
  }
  if (expected !== computed) {
    throw invalid(field, `does not match the CRC-32 of data (computed ${computed})`);
  }
  return computed;
}

/** Longest project or token name, in characters. */
const MAX_LABEL_LENGTH = 255;

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;

/**
 * Checks a name meant for people (projects, tokens): 1-255 characters, no
 * control characters, not only whitespace.
 * @returns the name, unchanged.
 */
export function validateLabel(value: string, field = "name"): string {
  const rule = `must be 1-${MAX_LABEL_LENGTH} characters`;
  if (value === "" || ONLY_WHITESPACE.test(value)) throw invalid(field, `is required: ${rule}`);
  const length = codePointLength(value);
  if (length > MAX_LABEL_LENGTH) throw invalid(field, `${rule} (got ${length})`);
  if (CONTROL.test(value)) throw invalid(field, `${rule}, without control characters`);
  return validateText(value, field);
}
