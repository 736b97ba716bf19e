import type { Logger } from "pino";
import { withoutQueryParameters } from "../db/errors.ts";

/**
 * The server's last resort. An exception nobody caught, or a rejection
 * nobody handled, is a bug, and the process exits 1, as node would; but
 * node would print the error itself, whole: a drizzle query error's message
 * and `params` hold the query's parameters (ciphertexts, wrapped data keys,
 * token hashes). Here the error goes through the logger's error serializer
 * (withoutQueryParameters) as a fatal line on stdout, and its message and
 * stack, without the parameters, to stderr for whoever reads a crash there.
 * A command without a logger (rotate-keys) gets the stderr part only.
 */
export function exitOnCrash(logger?: Logger): void {
  const crash = (what: string) => (err: unknown) => {
    // The logger's `err` serializer leaves the parameters out itself.
    logger?.fatal({ err }, `${what}: exiting`);
    process.stderr.write(`coffer-server: ${what}: ${describe(withoutQueryParameters(err))}\n`);
    process.exit(1);
  };
  process.on("uncaughtException", crash("uncaught exception"));
  process.on("unhandledRejection", crash("unhandled rejection"));
}

/** An error's stack (its message first); anything else thrown is named by its type only. */
function describe(err: unknown): string {
  if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
  return `a thrown ${err === null ? "null" : typeof err}, not an Error`;
}
