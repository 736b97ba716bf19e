import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository: nothing the release test runs may resolve a file under it. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

const started = Date.now();
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Runs one named step, printing its start and how long it took: the test is long. */
export async function step<T>(name: string, body: () => Promise<T>): Promise<T> {
  const at = Date.now();
  console.log(`[release ${seconds(at - started)}] ${name}`);
  const result = await body();
  console.log(`[release ${seconds(Date.now() - started)}]   ok (${seconds(Date.now() - at)})`);
  return result;
}

/** The time since the test started. */
export const elapsed = () => seconds(Date.now() - started);

/**
 * The environment of every process the test starts: the runner's, less what
 * could make it reach the repository or change what it does: npm's
 * variables of an enclosing `npm run` (npm_config_local_prefix and kin would
 * point npm at the repository), NODE_OPTIONS and NODE_PATH, every COFFER_*
 * setting of the developer's shell, and the repository's folders on PATH
 * (`npm run` puts node_modules/.bin there). The node running the test comes
 * first on PATH, so that `#!/usr/bin/env node` is this node.
 */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(npm_|COFFER_|NODE_OPTIONS$|NODE_PATH$|INIT_CWD$)/i.test(key)) continue;
    env[key] = value;
  }
  const outside = (process.env.PATH ?? "")
    .split(path.delimiter)
    .filter((dir) => dir !== "" && !isInside(path.resolve(dir), REPO_ROOT));
  env.PATH = [path.dirname(process.execPath), ...outside].join(path.delimiter);
  return { ...env, ...extra };
}

/** Whether `file` is `folder` or under it. */
export function isInside(file: string, folder: string): boolean {
  const rel = path.relative(folder, file);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

/** What a finished command did. */
export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Options of {@link run} and {@link Service}. */
export interface RunOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
}

/** Processes still running: killed (their whole group) if the test ends without stopping them. */
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) killGroup(child, "SIGKILL");
});

function killGroup(child: ChildProcess, signal: NodeJS.Signals) {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** The command line as it would be typed, for messages. */
const shown = (command: string, args: string[]) => [command, ...args].join(" ");

/**
 * Runs a command to its end and returns its output; throws, with that
 * output, when it fails (unless `allowFailure`) or outlives `timeoutMs`.
 */
export function run(
  command: string,
  args: string[],
  options: RunOptions & { allowFailure?: boolean },
): Promise<Result> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    detached: true,
    stdio: ["pipe", "pipe", "pipe"],
  });
  live.add(child);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on("data", (c: Buffer) => out.push(c));
  child.stderr?.on("data", (c: Buffer) => err.push(c));
  child.stdin?.end(options.input);
  const timeoutMs = options.timeoutMs ?? 120_000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => killGroup(child, "SIGKILL"), timeoutMs);
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      const result = {
        code,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      };
      if (code === 0 || options.allowFailure) {
        resolve(result);
        return;
      }
      const how =
        signal !== null ? `killed by ${signal} (timeout ${timeoutMs} ms?)` : `exit ${code}`;
      reject(
        new Error(
          `${shown(command, args)} (in ${options.cwd}): ${how}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`,
        ),
      );
    });
  });
}

/**
 * A long-running process (server, agent) in a process group of its own,
 * its output kept for {@link Service.waitForLine} and for the error message
 * when something goes wrong.
 */
export class Service {
  readonly #child: ChildProcess;
  readonly #lines: string[] = [];
  readonly #exited: Promise<number | null>;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    options: RunOptions,
  ) {
    this.#child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    live.add(this.#child);
    for (const stream of [this.#child.stdout, this.#child.stderr]) {
      let rest = "";
      stream?.on("data", (chunk: Buffer) => {
        const lines = (rest + chunk.toString()).split("\n");
        rest = lines.pop() ?? "";
        this.#lines.push(...lines);
      });
    }
    this.#exited = new Promise((resolve) => {
      this.#child.once("close", (code) => {
        live.delete(this.#child);
        resolve(code);
      });
    });
  }

  /** Everything it wrote so far, for messages. */
  get output(): string {
    return this.#lines.join("\n");
  }

  /** The first line `match` accepts (returns a value), waiting up to `timeoutMs`. */
  async waitForLine<T>(match: (line: string) => T | undefined, timeoutMs: number): Promise<T> {
    let exited = false;
    void this.#exited.then(() => {
      exited = true;
    });
    const deadline = Date.now() + timeoutMs;
    for (let seen = 0; ; ) {
      for (; seen < this.#lines.length; seen++) {
        const found = match(this.#lines[seen] ?? "");
        if (found !== undefined) return found;
      }
      if (exited) throw new Error(`${this.name} exited early; its output:\n${this.output}`);
      if (Date.now() > deadline) {
        throw new Error(
          `${this.name}: no awaited line in ${timeoutMs} ms; its output:\n${this.output}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves to the exit code (null when killed). */
  async stop(graceMs = 15_000): Promise<number | null> {
    killGroup(this.#child, "SIGTERM");
    const timer = setTimeout(() => killGroup(this.#child, "SIGKILL"), graceMs);
    const code = await this.#exited;
    clearTimeout(timer);
    return code;
  }
}

/** Polls `probe` until it returns a value, or throws `describe()` after `timeoutMs`. */
export async function waitUntil<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  describe: () => string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`after ${timeoutMs} ms: ${describe()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
