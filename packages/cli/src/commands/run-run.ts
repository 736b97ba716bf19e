import type { Runs } from "../args.ts";
import {
  type Child,
  exitCodeOf,
  FORWARDED_SIGNALS,
  parseSignal,
  signalNumber,
  startChild,
  stopChild,
} from "../child.ts";
import { connect, requireProject } from "../connection.ts";
import { checkPrefix, type Variable } from "../env-names.ts";
import { type ExitCode, UsageError } from "../errors.ts";
import { parseDuration } from "../refs.ts";
import { describeError } from "../rpc-errors.ts";
import { type Loaded, loadVariables, parseSelection } from "../run-secrets.ts";
import { follow, openWatch } from "../run-watch.ts";
import type { RUN } from "./run.ts";

const DEFAULT_GRACE_MS = 10_000;

/**
 * The child's environment: this process's, less every COFFER_* variable
 * (the token first of all: the child gets values, not the power to read
 * more), then the secrets, which win over a variable of the same name.
 */
export function childEnv(
  parent: NodeJS.ProcessEnv,
  variables: Map<string, Variable>,
): { env: NodeJS.ProcessEnv; overridden: string[] } {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(parent)) {
    if (!key.startsWith("COFFER_")) env[key] = value;
  }
  const overridden: string[] = [];
  for (const [name, v] of variables) {
    if (env[name] !== undefined) overridden.push(name);
    env[name] = v.value;
  }
  return { env, overridden };
}

/** The names whose values differ between two loads (added and removed ones too). */
export function changedNames(a: Map<string, Variable>, b: Map<string, Variable>): string[] {
  const names = new Set([...a.keys(), ...b.keys()]);
  return [...names].filter((n) => a.get(n)?.value !== b.get(n)?.value).sort();
}

/** What `coffer run` (run.ts) does. */
export const run: Runs<typeof RUN> = {
  async run(ctx, { values, args }) {
    const [command, ...commandArgs] = args;
    if (command === undefined || command === "") {
      throw new UsageError(
        'missing COMMAND: put the program to run after "--"',
        "e.g. coffer run --path /prod -- node server.js",
      );
    }
    const selection = parseSelection(values.path, values.secret ?? []);
    const prefix = values.prefix === undefined ? "" : checkPrefix(values.prefix);
    const watch = values.watch === true;
    if (!watch && values["watch-signal"] !== undefined)
      throw new UsageError("--watch-signal goes with --watch");
    if (!watch && values.grace !== undefined) throw new UsageError("--grace goes with --watch");
    if (watch && values["single-access"]) {
      throw new UsageError(
        "--watch reads the secrets again on every change, and a single-access version can be read once: leave out one of --watch and --single-access",
      );
    }
    const watchSignal =
      values["watch-signal"] === undefined
        ? undefined
        : parseSignal(values["watch-signal"], "--watch-signal");
    const graceMs =
      values.grace === undefined ? DEFAULT_GRACE_MS : parseDuration(values.grace, "--grace");
    const note = async (text: string) => {
      if (!values.quiet) await ctx.io.stderr.write(`coffer: ${text}\n`);
    };

    const conn = await connect(ctx, values);
    const projectId = await requireProject(conn);
    const load = () =>
      loadVariables(conn, projectId, selection, {
        prefix,
        consumeSingleAccess: values["single-access"] === true,
      });
    // With --watch, the stream is open before the secrets are read, so that
    // no change can fall between the read and the watch.
    const watchStop = new AbortController();
    const stream = watch
      ? await openWatch(conn, projectId, selection, watchStop.signal).catch((err: unknown) => {
          watchStop.abort();
          throw err;
        })
      : undefined;
    let loaded: Loaded;
    try {
      loaded = await load();
    } catch (err) {
      watchStop.abort();
      throw err;
    }
    if (watch) await note("watching the secrets for changes");
    for (const s of loaded.skipped) await note(`skipped ${s}`);
    for (const c of loaded.consumed)
      await note(`consumed single-access ${c}: it cannot be read again`);
    let { env, overridden } = childEnv(ctx.env, loaded.variables);
    await note(
      `running ${command} with ${loaded.variables.size} variable${loaded.variables.size === 1 ? "" : "s"} from ${loaded.secretCount} secret${loaded.secretCount === 1 ? "" : "s"}${overridden.length > 0 ? ` (overriding ${overridden.join(", ")} from the environment)` : ""}`,
    );

    // From here on, the signals are the child's.
    let child: Child | undefined;
    let stopSignal: NodeJS.Signals | undefined;
    let restarting: Promise<void> | undefined;
    const handlers = FORWARDED_SIGNALS.map((signal) => {
      const handler = () => {
        if (signal !== "SIGUSR1" && signal !== "SIGUSR2" && restarting !== undefined)
          stopSignal = signal;
        if (child !== undefined && !child.done) child.process.kill(signal);
      };
      process.on(signal, handler);
      return () => process.off(signal, handler);
    });
    try {
      child = await startChild(command, commandArgs, env);
      let finished = false;
      if (stream !== undefined) {
        const restart = async (next: Loaded) => {
          const before = loaded;
          loaded = next;
          const changed = changedNames(before.variables, next.variables);
          if (changed.length === 0) {
            await note(`no variable changed; ${command} keeps running`);
            return;
          }
          if (finished || child === undefined || child.done) return;
          ({ env, overridden } = childEnv(ctx.env, next.variables));
          if (watchSignal !== undefined) {
            await note(
              `${changed.join(", ")} changed; sent ${watchSignal} to ${command} (its environment stays as it started)`,
            );
            child.process.kill(watchSignal);
            return;
          }
          await note(`${changed.join(", ")} changed; restarting ${command}`);
          const old = child;
          restarting = (async () => {
            const stopped = await stopChild(old, graceMs);
            if (stopped.killed)
              await note(`${command} did not exit within ${graceMs} ms of SIGTERM: killed it`);
            // Stopped meanwhile (a signal, or the old child exited on its
            // own first and coffer is exiting with it): start nothing.
            if (stopSignal !== undefined || finished) return;
            child = await startChild(command, commandArgs, env);
          })();
          try {
            await restarting;
          } catch {
            // The main loop reports it (a command that can no longer start).
          } finally {
            restarting = undefined;
          }
        };
        void follow(ctx, stream, selection, () => loaded.secretIds, watchStop.signal, {
          reload: async (why) => {
            await note(`${why}; reading the secrets again`);
            let next: Loaded;
            try {
              next = await load();
            } catch (err) {
              const { message } = describeError(err);
              await ctx.io.stderr.write(
                `coffer: could not read the secrets after a change: ${message}; ${command} keeps running with the values it has\n`,
              );
              return;
            }
            await restart(next);
          },
        });
      }
      for (;;) {
        const exit = await (child as Child).exited;
        if (restarting !== undefined) {
          // An exit this process asked for: the next child takes over.
          const old: Child | undefined = child;
          await restarting;
          if (stopSignal !== undefined) {
            // A signal came during the restart: none was started, or the new
            // one may have missed it.
            if (child === old) return (128 + signalNumber(stopSignal)) as ExitCode;
            if (child !== undefined && !child.done) child.process.kill(stopSignal);
          }
          continue;
        }
        finished = true;
        return exitCodeOf(exit) as ExitCode;
      }
    } finally {
      watchStop.abort();
      for (const off of handlers) off();
    }
  },
};
