/**
 * The one duration grammar of Coffer's settings and flags: the server's
 * `COFFER_*` durations, the agent's config and the CLI's flags all parse with
 * it, so a value a user writes means the same thing wherever it is written.
 *
 * A duration is one or more `<whole number><unit>` parts with no space
 * between them, units `ms`, `s`, `m`, `h` and `d` (a day is 24 hours), added
 * up: `500ms`, `30s`, `5m`, `1h30m`, `7d`, `1d12h`. Surrounding white space is
 * ignored (an environment variable often carries some); a bare number is
 * refused, since its unit would be a guess.
 *
 * Hand-written here, not in the generated code: `@coffer/api` is the one
 * package the server, the agent and the CLI all depend on at run time.
 */

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const WHOLE = /^(?:\d+(?:ms|s|m|h|d))+$/;
const PART = /(\d+)(ms|s|m|h|d)/g;

/** What a duration looks like, for messages: "a duration like 500ms, …". */
export const DURATION_EXAMPLES = "500ms, 30s, 5m, 1h30m or 7d";

/**
 * Milliseconds for a duration in the grammar above; undefined when `text` is
 * not one, or is too long to count in milliseconds exactly.
 */
export function parseDuration(text: string): number | undefined {
  const value = text.trim();
  if (!WHOLE.test(value)) return undefined;
  let ms = 0;
  for (const [, digits, unit] of value.matchAll(PART)) {
    ms += Number(digits) * (UNIT_MS[unit ?? ""] ?? Number.NaN);
  }
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/**
 * The rule a refused duration broke, to follow the setting's name:
 * `must be a duration like 500ms, 30s, 5m, 1h30m or 7d (got "10")`.
 */
export function durationRule(text: string): string {
  return `must be a duration like ${DURATION_EXAMPLES} (got ${JSON.stringify(text)})`;
}

/** The rule a duration outside `[min, max]` milliseconds broke, to follow the setting's name. */
export function durationRangeRule(text: string, min: number, max: number): string {
  return `must be a duration between ${min} ms and ${max} ms (got ${JSON.stringify(text)})`;
}
