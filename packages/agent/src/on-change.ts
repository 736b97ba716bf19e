import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import type { OnChangeConfig } from "./config.ts";
import type { Logger } from "./logger.ts";

/** The agent's own credential, which its `on_change` commands must not inherit. */
export interface AgentCredential {
  /** The bearer token's value. */
  token: string;
  /** The environment variable the token was read from, when it came from one. */
  tokenEnv?: string;
}

/** Coffer's settings and credentials: COFFER_TOKEN, COFFER_TOKEN_FILE, COFFER_BOOTSTRAP_TOKEN ... */
const COFFER_VARIABLE = /^COFFER_/i;

/**
 * The environment an `on_change` command gets: the agent's, without anything
 * that would let it act as the agent. Dropped: every `COFFER_*` variable
 * (tokens, token files, keys, database URLs: the command is not a Coffer
 * client, and one that needs to be must bring a token of its own), the
 * variable `server.token_env` names, and any variable whose value holds
 * the token under another name.
 */
export function childEnvironment(
  env: NodeJS.ProcessEnv,
  credential: AgentCredential,
): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || COFFER_VARIABLE.test(name) || name === credential.tokenEnv) continue;
    if (credential.token !== "" && value.includes(credential.token)) continue;
    out[name] = value;
  }
  return out;
}

/**
 * The action of an `on_change` block: runs its command (argv as given, no
 * shell, with {@link childEnvironment}) or signals its process. Never
 * throws: failures are logged. `scope` says whose action it is in the logs
 * ("agent" or a destination).
 */
export function onChangeAction(
  config: OnChangeConfig,
  logger: Logger,
  scope: string,
  credential: AgentCredential,
): () => Promise<void> {
  const action = config.action;
  if (action.kind === "command") {
    return () =>
      runCommand(
        action.argv,
        childEnvironment(process.env, credential),
        action.timeoutMs,
        logger,
        scope,
      );
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
 * Runs argv with `env`; its stdout and stderr go to the
 * agent's stderr, keeping stdout for the agent's JSON lines. Past
 * `timeoutMs` it gets SIGTERM, and SIGKILL 5 s later.
 */
function runCommand(
  argv: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
  logger: Logger,
  scope: string,
): Promise<void> {
  const [program, ...args] = argv;
  if (program === undefined) return Promise.resolve();
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(program, args, { stdio: ["ignore", 2, 2], env });
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
