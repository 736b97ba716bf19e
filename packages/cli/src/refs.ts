import { durationRule, parseDuration as parseSharedDuration } from "@coffer/api/duration";
import { UsageError } from "./errors.ts";

/**
 * What users type for secrets, revisions, durations and times, checked before
 * anything is sent, so that a typo gets a message about what was typed.
 * The name rule is the server's (SPEC section 2); the server checks it again.
 */

/** A secret as the user named it: by id, or by folder and name. */
export type SecretRef =
  | { kind: "id"; id: string; text: string }
  | { kind: "path"; path: string; name: string; text: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NAME = /^[A-Za-z0-9._-]{1,255}$/;
const NAME_RULE = '1-255 letters, digits, ".", "_" or "-", and not "." or ".."';
const MAX_SEGMENTS = 32;
const MAX_PATH_LENGTH = 1024;

/** Whether text is a UUID (a secret, project or token id). */
export function isUuid(text: string): boolean {
  return UUID.test(text);
}

/**
 * Parses a secret reference: `/path/name` (`/db` is `db` in `/`) or the
 * secret's id.
 * @throws UsageError naming the rule that `text` breaks.
 */
export function parseSecretRef(text: string): SecretRef {
  if (isUuid(text)) return { kind: "id", id: text.toLowerCase(), text };
  const rule =
    'a secret is named by its path and name, starting with "/" (e.g. /prod/db), or by its id (a UUID)';
  if (text === "") throw new UsageError(`empty secret reference: ${rule}`);
  if (!text.startsWith("/")) {
    throw new UsageError(
      `bad secret "${text}": ${rule}`,
      /^[A-Za-z0-9._/-]+$/.test(text) ? `did you mean "/${text}"?` : undefined,
    );
  }
  if (text === "/")
    throw new UsageError(`bad secret "/": that is a folder; add the secret's name (e.g. /db)`);
  if (text.endsWith("/")) {
    throw new UsageError(
      `bad secret "${text}": it ends with "/", which names a folder; a secret reference ends with the secret's name`,
    );
  }
  const segments = text.slice(1).split("/");
  if (segments.length > MAX_SEGMENTS + 1) {
    throw new UsageError(`bad secret "${text}": a path has at most ${MAX_SEGMENTS} folders`);
  }
  for (const segment of segments) checkSegment(segment, text);
  const name = segments.pop() as string;
  const path = segments.length === 0 ? "/" : `/${segments.join("/")}`;
  if (path.length > MAX_PATH_LENGTH) {
    throw new UsageError(`bad secret "${text}": a path has at most ${MAX_PATH_LENGTH} characters`);
  }
  return { kind: "path", path, name, text };
}

/**
 * Parses a folder: `/` or `/seg(/seg)*`; one trailing slash is dropped.
 * @throws UsageError naming the rule.
 */
export function parseFolder(text: string, what = "folder"): string {
  if (text === "/") return "/";
  if (!text.startsWith("/")) {
    throw new UsageError(`bad ${what} "${text}": a folder starts with "/" (e.g. /prod)`);
  }
  const trimmed = text.endsWith("/") ? text.slice(0, -1) : text;
  const segments = trimmed.slice(1).split("/");
  if (segments.length > MAX_SEGMENTS) {
    throw new UsageError(`bad ${what} "${text}": at most ${MAX_SEGMENTS} segments`);
  }
  for (const segment of segments) checkSegment(segment, text, what);
  if (trimmed.length > MAX_PATH_LENGTH) {
    throw new UsageError(`bad ${what} "${text}": at most ${MAX_PATH_LENGTH} characters`);
  }
  return trimmed;
}

function checkSegment(segment: string, text: string, what = "secret"): void {
  if (segment === "") throw new UsageError(`bad ${what} "${text}": empty segment ("//")`);
  if (!NAME.test(segment) || segment === "." || segment === "..") {
    throw new UsageError(
      `bad ${what} "${text}": "${segment}" is not a valid name; each part must be ${NAME_RULE}`,
    );
  }
}

/**
 * Checks a revision selector: a number from 1, `latest` or `latest_enabled`.
 * @throws UsageError.
 */
export function parseRevision(text: string): string {
  if (text === "latest" || text === "latest_enabled") return text;
  if (/^[1-9][0-9]{0,9}$/.test(text) && Number(text) <= 2 ** 31 - 1) return text;
  throw new UsageError(
    `bad revision "${text}": a revision is a number (1, 2, ...), "latest" or "latest_enabled"`,
  );
}

/**
 * Parses a duration flag in the grammar the server and the agent share
 * (`@coffer/api/duration`): `500ms`, `30s`, `5m`, `1h30m`, `7d`.
 * @throws UsageError naming the flag.
 */
export function parseDuration(text: string, flag: string): number {
  const ms = parseSharedDuration(text);
  if (ms === undefined) throw new UsageError(`${flag} ${durationRule(text)}`);
  return ms;
}

/**
 * Parses a point in time: an ISO 8601 date or date-time (with a zone or
 * `Z`), or a duration before `now` (`1h` means an hour ago).
 * @throws UsageError naming the flag.
 */
export function parseTime(text: string, flag: string, now = Date.now()): Date {
  if (/^\d/.test(text) && /(ms|s|m|h|d)$/.test(text) && !text.includes("-")) {
    return new Date(now - parseDuration(text, flag));
  }
  const date = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(date.getTime())) {
    throw new UsageError(
      `${flag} must be a time like 2025-06-01T12:00:00Z, or a duration ago like 1h (got "${text}")`,
    );
  }
  return date;
}

/**
 * Parses a page number or size flag.
 * @throws UsageError.
 */
export function parsePositive(
  text: string | undefined,
  flag: string,
  max: number,
): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[1-9][0-9]*$/.test(text) || Number(text) > max) {
    throw new UsageError(`${flag} must be a whole number from 1 to ${max} (got "${text}")`);
  }
  return Number(text);
}
