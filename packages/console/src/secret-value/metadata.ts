/**
 * The server's rules for a secret's path, name, tags and time to live
 * (packages/server/src/domain/validation.ts), checked in the browser as the
 * person types. Each message quotes the server's rule as its own refusal
 * states it (`must start with "/"`), so the browser and the server say the
 * same thing; the server stays the authority.
 */

export const MAX_NAME_LENGTH = 255;
export const MAX_PATH_LENGTH = 1024;
export const MAX_PATH_SEGMENTS = 32;
export const MAX_TAGS = 64;
export const MAX_TAG_LENGTH = 128;
export const MAX_DESCRIPTION_LENGTH = 1024;

/** The server's path rule, as its messages and the proto state it. */
export const PATH_RULE = 'must start with "/"';

const NAME_RULE = `must be 1-${MAX_NAME_LENGTH} characters of letters, digits, ".", "_", "-"`;
const NAME_CHAR = /^[A-Za-z0-9._-]$/;

function codePoints(value: string): number {
  return Array.from(value).length;
}

function segmentProblem(value: string): string | undefined {
  if (value.length > MAX_NAME_LENGTH) return `${NAME_RULE} (got ${codePoints(value)} characters)`;
  let position = 0;
  for (const char of value) {
    position++;
    if (!NAME_CHAR.test(char)) {
      return `${NAME_RULE} (character ${JSON.stringify(char)} at position ${position} is not allowed)`;
    }
  }
  if (value === "." || value === "..") return 'must not be "." or ".."';
  return undefined;
}

/**
 * The rule a folder path breaks, as "Path <rule>", or undefined when the
 * server will accept it. An empty path means "/" to the server, but the form
 * asks for one, so it says so.
 */
export function pathProblem(value: string): string | undefined {
  if (value === "") return `Path ${PATH_RULE}: enter "/" for the top folder, or "/folder/sub".`;
  if (value === "/") return undefined;
  if (!value.startsWith("/")) return `Path ${PATH_RULE} (got ${JSON.stringify(value)}).`;
  const path = value.endsWith("/") ? value.slice(0, -1) : value;
  if (path.length > MAX_PATH_LENGTH) {
    return `Path must be at most ${MAX_PATH_LENGTH} characters (got ${codePoints(path)}).`;
  }
  const segments = path.slice(1).split("/");
  if (segments.length > MAX_PATH_SEGMENTS) {
    return `Path must have at most ${MAX_PATH_SEGMENTS} segments (got ${segments.length}).`;
  }
  for (const [index, segment] of segments.entries()) {
    if (segment === "") return 'Path must not contain empty segments ("//").';
    const problem = segmentProblem(segment);
    if (problem) return `Path segment ${index + 1} ${problem}.`;
  }
  return undefined;
}

/** The path the server stores for an accepted path: one trailing slash dropped. */
export function normalizePath(value: string): string {
  if (value === "" || value === "/") return "/";
  return value.endsWith("/") ? value.slice(0, -1) : value;
}

/** The rule a secret name breaks, or undefined. */
export function nameProblem(value: string): string | undefined {
  if (value === "")
    return `Enter a name: 1-${MAX_NAME_LENGTH} characters of letters, digits, ".", "_", "-".`;
  const problem = segmentProblem(value);
  return problem ? `Name ${problem}.` : undefined;
}

/** Tags typed as one comma-separated line: trimmed, empty ones dropped. */
export function splitTags(text: string): string[] {
  return text
    .split(",")
    .map((t) => t.trim())
    .filter((t) => t !== "");
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const TAG_FORBIDDEN = /[\u0000-\u001f\u007f-\u009f]/u;

/** The rule a list of tags breaks, or undefined. */
export function tagsProblem(tags: readonly string[]): string | undefined {
  for (const tag of tags) {
    if (codePoints(tag) > MAX_TAG_LENGTH) {
      return `Each tag must be 1-${MAX_TAG_LENGTH} printable characters ("${tag.slice(0, 20)}..." is ${codePoints(tag)}).`;
    }
    if (TAG_FORBIDDEN.test(tag))
      return `Each tag must be 1-${MAX_TAG_LENGTH} printable characters.`;
  }
  if (new Set(tags).size > MAX_TAGS) return `A secret may have at most ${MAX_TAGS} tags.`;
  return undefined;
}

/** The rule a description breaks, or undefined. */
export function descriptionProblem(value: string): string | undefined {
  const length = codePoints(value);
  return length > MAX_DESCRIPTION_LENGTH
    ? `The description must be at most ${MAX_DESCRIPTION_LENGTH} characters (got ${length}).`
    : undefined;
}

/** Units a time to live is entered in, with their length. */
export const TTL_UNITS = {
  minutes: 60_000,
  hours: 3_600_000,
  days: 86_400_000,
} as const;
export type TtlUnit = keyof typeof TTL_UNITS;

export const MIN_TTL_MS = 1000;
export const MAX_TTL_MS = 365 * 86_400_000;

/** A time to live typed as a number and a unit, in milliseconds, or the rule it breaks. */
export function parseTtl(amount: string, unit: TtlUnit): { ms: number } | { problem: string } {
  if (!/^[0-9]+$/.test(amount.trim())) {
    return { problem: "Enter the time to live as a whole number, up to 365 days (one year)." };
  }
  const ms = Number(amount.trim()) * TTL_UNITS[unit];
  if (ms < MIN_TTL_MS) return { problem: "The time to live must be at least 1 minute." };
  if (ms > MAX_TTL_MS) {
    return { problem: "The time to live can be at most one year (365 days, 8,760 hours)." };
  }
  return { ms };
}
