import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import type { OnChangeConfig } from "./config.ts";
import type { Logger } from "./logger.ts";

/**
 * The action of an `on_change` block: runs its command (argv as given, no
 * shell) or signals its process. Never throws: failures are logged.
 * `scope` says whose action it is in the logs ("agent" or a destination).
 */
export function onChangeAction(
  config: OnChangeConfig,
  logger: Logger,
  scope: string,
): () => Promise<void> {
  const action = config.action;
  if (action.kind === "command") {
    return () => runCommand(action.argv, action.timeoutMs, logger, scope);
  }
  return async () => {
    let pid = action.pid;
    if (action.pidFile !== undefined) {
      try {
        const text = (await readFile(action.pidFile, "utf8")).trim();
        if (!/^\d+$/.test(text)) throw new Error("it does not hold a process id");
        pid = Number(text);
      } catch (err) {
        logger.warn(
          { scope, pidFile: action.pidFile, err: (err as Error).message },
          "on_change: cannot read the pid file",
        );
        return;
      }
    }
    if (pid === undefined) return;
    try {
      process.kill(pid, action.signal);
      logger.info({ scope, signal: action.signal, pid }, "on_change: signal sent");
    } catch (err) {
      logger.warn(
        { scope, signal: action.signal, pid, code: (err as NodeJS.ErrnoException).code },
        "on_change: could not send the signal",
      );
    }
  };
}

/**
 * Runs argv with the agent's environment; its stdout and stderr go to the
 * agent's stderr, keeping stdout for the agent's JSON lines. Past
 * `timeoutMs` it gets SIGTERM, and SIGKILL 5 s later.
 */
function runCommand(
  argv: string[],
  timeoutMs: number,
  logger: Logger,
  scope: string,
): Promise<void> {
  const [program, ...args] = argv;
  if (program === undefined) return Promise.resolve();
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(program, args, { stdio: ["ignore", 2, 2] });
    let killTimer: NodeJS.Timeout | undefined;
    let finished = false;
    const timer = setTimeout(() => {
      child.kill("SIGTERM");
      killTimer = setTimeout(() => child.kill("SIGKILL"), 5000);
    }, timeoutMs);
    const finish = (fields: Record<string, unknown>, ok: boolean) => {
      // "error" (could not spawn) may or may not be followed by "exit".
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearTimeout(killTimer);
      const log = {
        scope,
        program,
        durationMs: Math.round(performance.now() - started),
        ...fields,
      };
      if (ok) logger.info(log, "on_change: command finished");
      else logger.warn(log, "on_change: command failed");
      resolve();
    };
    child.once("error", (err: NodeJS.ErrnoException) => finish({ code: err.code }, false));
    child.once("exit", (exitCode, signal) => finish({ exitCode, signal }, exitCode === 0));
  });
}
