import { type ChildProcess, spawn } from "node:child_process";
import { constants } from "node:os";
import { CliError, UsageError } from "./errors.ts";

/**
 * The program `coffer run` starts: spawned without a shell, with this
 * process's stdin, stdout and stderr, in this process group (so that a
 * terminal's Ctrl-C and job control reach it as they would without
 * coffer), and an environment given in memory only.
 */

/** The signals `coffer run` passes on to its child. */
export const FORWARDED_SIGNALS = [
  "SIGINT",
  "SIGTERM",
  "SIGHUP",
  "SIGQUIT",
  "SIGUSR1",
  "SIGUSR2",
] as const satisfies readonly NodeJS.Signals[];

/** How a child ended. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * The exit code a shell would give: the child's own, or 128 + the number
 * of the signal that killed it (SIGTERM: 143).
 */
export function exitCodeOf(exit: ChildExit): number {
  if (exit.code !== null) return exit.code;
  const number = exit.signal === null ? undefined : constants.signals[exit.signal];
  return 128 + (number ?? 0);
}

/** The number of a signal, for 128 + n. */
export function signalNumber(signal: NodeJS.Signals): number {
  return constants.signals[signal] ?? 0;
}

/**
 * Reads a signal flag: `SIGHUP`, `HUP` or `hup`.
 * @throws UsageError naming the flag.
 */
export function parseSignal(text: string, flag: string): NodeJS.Signals {
  const name = text.toUpperCase().startsWith("SIG")
    ? text.toUpperCase()
    : `SIG${text.toUpperCase()}`;
  if (!Object.hasOwn(constants.signals, name)) {
    throw new UsageError(`${flag} must be a signal such as SIGHUP or SIGUSR1 (got "${text}")`);
  }
  return name as NodeJS.Signals;
}

/** A started child. */
export interface Child {
  process: ChildProcess;
  /** Resolves when the child has exited (never rejects). */
  exited: Promise<ChildExit>;
  /** Whether it has exited. */
  readonly done: boolean;
}

/**
 * Starts `command args...` with `env`. Resolves once the OS has started it.
 * @throws CliError with the shell's codes: 127 when there is no such
 * command, 126 when it cannot be executed.
 */
export function startChild(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<Child> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: "inherit", env });
    let done = false;
    const exited = new Promise<ChildExit>((resolveExit) => {
      child.once("exit", (code, signal) => {
        done = true;
        resolveExit({ code, signal });
      });
    });
    child.once("error", (err: NodeJS.ErrnoException) => {
      if (child.pid !== undefined) return; // An error after a successful start (a failed kill): ignored.
      reject(
        err.code === "ENOENT"
          ? new CliError(
              `cannot run "${command}": no such command (looked for on PATH)`,
              127 as CliError["exitCode"],
            )
          : new CliError(
              `cannot run "${command}": ${err.code === "EACCES" ? "permission denied (is it executable?)" : err.message}`,
              126 as CliError["exitCode"],
            ),
      );
    });
    child.once("spawn", () =>
      resolve({
        process: child,
        exited,
        get done() {
          return done;
        },
      }),
    );
  });
}

/**
 * Stops a child: SIGTERM, then SIGKILL when it is still running after
 * `graceMs`. Resolves with how it ended, and whether it took the SIGKILL.
 */
export async function stopChild(
  child: Child,
  graceMs: number,
): Promise<ChildExit & { killed: boolean }> {
  if (child.done) return { ...(await child.exited), killed: false };
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.process.kill("SIGKILL");
  }, graceMs);
  child.process.kill("SIGTERM");
  const exit = await child.exited;
  clearTimeout(timer);
  return { ...exit, killed };
}
