/**
 * The exit codes of `coffer`, which scripts branch on. They are part of the
 * CLI's contract (documented in packages/cli/README.md): never renumber one.
 */
export const ExitCode = {
  /** The command did what it was asked. */
  Ok: 0,
  /** Anything else: a server bug (INTERNAL), a checksum mismatch, a file that cannot be read. */
  Failure: 1,
  /** The command line or a setting is wrong: unknown flag, bad argument, bad profile. */
  Usage: 2,
  /** The secret, version, project or token does not exist (or is outside the token's grants). */
  NotFound: 3,
  /** No valid token, or the token's role does not allow the call. */
  Denied: 4,
  /** The state forbids it: already exists, disabled, protected, consumed, stale etag. */
  Conflict: 5,
  /** The server could not be reached or did not answer in time: retrying may help. */
  Unavailable: 6,
  /** A quota or the rate limit was hit. */
  Exhausted: 7,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The exit codes, as `coffer --help` lists them. */
export const EXIT_CODE_HELP = `Exit codes:
  0  ok
  1  failure: a server error (INTERNAL, UNKNOWN, ...), a payload checksum mismatch, a file error
  2  usage: unknown command or flag, bad argument, bad profile file; INVALID_ARGUMENT
  3  not found: the secret, version, project or field does not exist; NOT_FOUND
  4  denied: no token, a refused token (UNAUTHENTICATED), or a role that does not allow it (PERMISSION_DENIED)
  5  conflict: ALREADY_EXISTS, FAILED_PRECONDITION (disabled, protected, consumed...), ABORTED (stale etag)
  6  unavailable: the server cannot be reached (UNAVAILABLE) or did not answer in time (DEADLINE_EXCEEDED)
  7  exhausted: a quota or the rate limit (RESOURCE_EXHAUSTED)`;

/** An error the CLI reports as one message (plus an optional hint) and an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = ExitCode.Failure,
    /** What to do about it, each line printed as `hint: ...`. */
    readonly hint?: string,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** A wrong command line: exit code 2, with a pointer to the command's help. */
export class UsageError extends CliError {
  constructor(message: string, hint?: string) {
    super(message, ExitCode.Usage, hint);
    this.name = "UsageError";
  }
}

/** What the connection was, for hints about an error (never holds the token). */
export interface ErrorContext {
  url?: string;
  /** The JWT file the command signed in with, when it did (a path, never the JWT). */
  jwtFile?: string;
  /** The command as typed, e.g. "coffer version access", for "--help" hints. */
  command?: string;
}

/**
 * What the user sees of a {@link CliError}: its message, its hint (for a
 * usage error without one, a pointer to the command's help), its exit code.
 * Errors of any other kind, a server's among them, are told by
 * rpc-errors.ts.
 */
export function describeCliError(
  err: CliError,
  context: ErrorContext = {},
): { message: string; hint?: string; exitCode: ExitCode } {
  if (err instanceof UsageError) {
    // A usage error with a hint of its own says what to do already.
    const help =
      context.command !== undefined && err.hint === undefined
        ? `see "${context.command} --help"`
        : undefined;
    const hint = [err.hint, help].filter((h) => h !== undefined).join("\n");
    return { message: err.message, exitCode: err.exitCode, ...(hint !== "" && { hint }) };
  }
  return { message: err.message, exitCode: err.exitCode, ...(err.hint && { hint: err.hint }) };
}

/**
 * Loads the module behind `coffer server` or `coffer agent`, which imports
 * the @coffer/server or @coffer/agent package: optional peers of the CLI,
 * so that installing the CLI does not install a database. Missing, the
 * command says which package to install.
 */
export async function loadWithPackage<T>(pkg: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e?.code === "ERR_MODULE_NOT_FOUND" && e.message.includes(`'${pkg}'`)) {
      throw new CliError(
        `this command runs ${pkg}, which is not installed beside the CLI`,
        ExitCode.Failure,
        `install it: npm install --global ${pkg}`,
      );
    }
    throw err;
  }
}
