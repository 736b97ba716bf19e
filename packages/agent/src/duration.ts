const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a duration such as "500ms", "15s", "2m", "1h" or "1m30s" into
 * milliseconds; undefined when it is not one.
 */
export function parseDuration(value: string): number | undefined {
  const text = value.trim();
  if (!/^(\d+(ms|s|m|h))+$/.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/(\d+)(ms|s|m|h)/g)) {
    total += Number(m[1]) * (UNITS[m[2] ?? ""] ?? 0);
  }
  return total;
}

/** Formats milliseconds the way the config is written: "1500ms", "15s", "2m". */
export function formatDuration(ms: number): string {
  if (ms % 60_000 === 0 && ms >= 60_000) return `${ms / 60_000}m`;
  if (ms % 1000 === 0 && ms >= 1000) return `${ms / 1000}s`;
  return `${ms}ms`;
}
