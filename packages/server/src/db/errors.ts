import { DrizzleQueryError } from "drizzle-orm";
/**
 * Finds the SQLSTATE of a database error, whichever driver raised it and
 * however deeply drizzle wrapped it (DrizzleQueryError keeps it in `cause`).
 */
export function pgErrorCode(err: unknown): string | undefined {
  for (const code of codesOf(err)) if (/^[0-9A-Z]{5}$/.test(code)) return code;
  return undefined;
}

/** The string `code` of an error and of each of its causes, five deep at most. */
function* codesOf(err: unknown): Generator<string> {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") yield code;
  }
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
 * Whether an error means the connection it came from is gone (refused,
 * dropped, timed out), and with it any transaction it held.
 */
export function isConnectionLost(err: unknown): boolean {
  for (const code of codesOf(err)) if (CONNECTION_CODES.has(code)) return true;
  return false;
}

/**
 * Whether an error means the database cannot be reached right now (the
 * client may retry): refused or dropped connections, and the SQLSTATE
 * classes for connection failures (08), insufficient resources (53),
 * operator intervention such as a shutdown (57P01-57P03).
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (const code of codesOf(err)) {
    if (CONNECTION_CODES.has(code)) return true;
    if (code.startsWith("08") || code.startsWith("53")) return true;
    if (code === "57P01" || code === "57P02" || code === "57P03") return true;
  }
  return false;
}

/**
 * Drizzle's query errors repeat every parameter of the failed query, in
 * their message and as a property: ciphertexts, wrapped data keys, token
 * hashes. What may be logged keeps the query text and the driver's error
 * only, wherever such an error sits in a cause chain.
 */
export function withoutQueryParameters(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error) || depth > 5) return err;
  if (err instanceof DrizzleQueryError) {
    return new Error(`failed query: ${err.query}`, {
      cause: withoutQueryParameters(err.cause, depth + 1),
    });
  }
  if (err.cause === undefined) return err;
  const cause = withoutQueryParameters(err.cause, depth + 1);
  if (cause === err.cause) return err;
  const copy = new Error(err.message, { cause });
  copy.name = err.name;
  if (err.stack) copy.stack = err.stack;
  return copy;
}
