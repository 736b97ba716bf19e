import { fieldViolations } from "@coffer/client";
import { Code, ConnectError } from "@connectrpc/connect";
import { CliError, describeCliError, type ErrorContext, ExitCode } from "./errors.ts";

/**
 * A server's errors in the CLI's terms: each Connect code's exit code and
 * hint, and a refused field as the flag that set it. Apart from errors.ts
 * because it needs Connect, which a command loads with its client; help
 * and usage errors do without it.
 */

/**
 * Every Connect code, its name as gRPC spells it, and the exit code it
 * becomes. Exhaustive: a new code fails the type check here.
 */
export const CONNECT_CODES: Record<Code, { name: string; exit: ExitCode }> = {
  [Code.Canceled]: { name: "CANCELLED", exit: ExitCode.Failure },
  [Code.Unknown]: { name: "UNKNOWN", exit: ExitCode.Failure },
  [Code.InvalidArgument]: { name: "INVALID_ARGUMENT", exit: ExitCode.Usage },
  [Code.DeadlineExceeded]: { name: "DEADLINE_EXCEEDED", exit: ExitCode.Unavailable },
  [Code.NotFound]: { name: "NOT_FOUND", exit: ExitCode.NotFound },
  [Code.AlreadyExists]: { name: "ALREADY_EXISTS", exit: ExitCode.Conflict },
  [Code.PermissionDenied]: { name: "PERMISSION_DENIED", exit: ExitCode.Denied },
  [Code.ResourceExhausted]: { name: "RESOURCE_EXHAUSTED", exit: ExitCode.Exhausted },
  [Code.FailedPrecondition]: { name: "FAILED_PRECONDITION", exit: ExitCode.Conflict },
  [Code.Aborted]: { name: "ABORTED", exit: ExitCode.Conflict },
  [Code.OutOfRange]: { name: "OUT_OF_RANGE", exit: ExitCode.Usage },
  [Code.Unimplemented]: { name: "UNIMPLEMENTED", exit: ExitCode.Failure },
  [Code.Internal]: { name: "INTERNAL", exit: ExitCode.Failure },
  [Code.Unavailable]: { name: "UNAVAILABLE", exit: ExitCode.Unavailable },
  [Code.DataLoss]: { name: "DATA_LOSS", exit: ExitCode.Failure },
  [Code.Unauthenticated]: { name: "UNAUTHENTICATED", exit: ExitCode.Denied },
};

/**
 * Turns anything thrown by a command into what the user sees: one message,
 * an optional hint, and the exit code. Server messages are shown as sent:
 * the server never puts payloads or tokens in them.
 */
export function describeError(
  err: unknown,
  context: ErrorContext = {},
): { message: string; hint?: string; exitCode: ExitCode } {
  if (err instanceof CliError) return describeCliError(err, context);
  if (err instanceof ConnectError) {
    const { name, exit } = CONNECT_CODES[err.code];
    const hint = hintFor(err.code, context);
    return {
      message: `${err.rawMessage || "call failed"} (${name})`,
      exitCode: exit,
      ...(hint !== undefined && { hint }),
    };
  }
  const e = err as NodeJS.ErrnoException | undefined;
  return { message: e?.message ?? String(err), exitCode: ExitCode.Failure };
}

function hintFor(code: Code, context: ErrorContext): string | undefined {
  switch (code) {
    case Code.Unauthenticated:
      if (context.jwtFile !== undefined) {
        return `signed in with the JWT file ${context.jwtFile} (--jwt-file or COFFER_JWT_FILE); an admin sees why an exchange was refused with "coffer audit list --method ExchangeToken"`;
      }
      return 'the token was refused: set COFFER_TOKEN to a valid token, or run "coffer login --url URL --token TOKEN"';
    case Code.PermissionDenied:
      return "the token's role does not allow this call; ask an admin for a token with the right grant";
    case Code.Unavailable:
      return `is a server running at ${context.url ?? "the url"}? (start one with "coffer server"; set --url or COFFER_URL)`;
    case Code.DeadlineExceeded:
      return "the server did not answer in time; try again, or raise --timeout";
    case Code.Unimplemented:
      return "the server does not know this call: is --url the right port for --protocol?";
    default:
      return undefined;
  }
}

/**
 * An INVALID_ARGUMENT from the server names the request field it refused and
 * the rule, apart from the message, as a google.rpc.BadRequest field
 * violation (`first_version.data.password`, `is required (a string)`). Where
 * the user typed a flag, say the flag: `fields` maps a request field (and
 * what is below it) to the flag that set it, e.g. `{ description:
 * "--description", "first_version.data": "--from-file db.json" }`. Anything
 * else passes through unchanged. Use as `.catch(inFlagTerms({...}))`.
 */
export function inFlagTerms(fields: Record<string, string | undefined>) {
  return (err: unknown): never => {
    if (!(err instanceof ConnectError) || err.code !== Code.InvalidArgument) throw err;
    for (const { field, description } of fieldViolations(err)) {
      // The longest mapped field that is the refused one or holds it.
      const key = Object.keys(fields)
        .filter((k) => fields[k] !== undefined)
        .filter((k) => field === k || field.startsWith(`${k}.`) || field.startsWith(`${k}[`))
        .sort((a, b) => b.length - a.length)[0];
      if (key === undefined) continue;
      const below = field.slice(key.length).replace(/^\./, "");
      const where = below === "" ? `${fields[key]}` : `${fields[key]}: ${below}`;
      throw new CliError(`${where}: ${description} (INVALID_ARGUMENT)`, ExitCode.Usage);
    }
    throw err;
  };
}
