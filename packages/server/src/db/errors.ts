/**
 * Finds the SQLSTATE of a database error, whichever driver raised it and
 * however deeply drizzle wrapped it (DrizzleQueryError keeps it in `cause`).
 */
export function pgErrorCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** Node socket errors and postgres-js connection errors: the database is unreachable. */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
]);

/**
 * Whether an error means the database cannot be reached right now (the
 * client may retry): refused or dropped connections, and the SQLSTATE
 * classes for connection failures (08), insufficient resources (53),
 * operator intervention such as a shutdown (57P01-57P03).
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== "string") continue;
    if (CONNECTION_CODES.has(code)) return true;
    if (code.startsWith("08") || code.startsWith("53")) return true;
    if (code === "57P01" || code === "57P02" || code === "57P03") return true;
  }
  return false;
}
