import { type ChildProcess, spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describeExit, type Exit, type OutputLine, REPO_ROOT } from "./server-process.ts";

/** The agent's entry point, the file `coffer-agent` runs. */
export const AGENT_MAIN = path.join(REPO_ROOT, "packages/agent/src/main.ts");

/** As for the server: one node process with tsx's loader, no tsx CLI in between. */
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;

/** A JSON log line of the agent. */
export type AgentLog = Record<string, unknown>;

/** Process groups still alive, killed if the test runner exits without cleaning up. */
const liveGroups = new Set<number>();
process.once("exit", () => {
  for (const pid of liveGroups) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
});

/**
 * A `coffer-agent` child process in a process group of its own. Its stdout
 * (JSON lines) and stderr are kept line by line for assertions.
 */
export class AgentProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly output: OutputLine[] = [];
  /** Resolves when the process has exited and its output is complete (never rejects). */
  readonly exited: Promise<Exit>;
  #exit: Exit | undefined;
  #lineListeners = new Set<(line: OutputLine) => void>();

  constructor(args: string[], env: NodeJS.ProcessEnv, cwd: string) {
    this.child = spawn(process.execPath, ["--import", TSX_LOADER, AGENT_MAIN, ...args], {
      cwd,
      env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    if (this.child.pid === undefined) throw new Error("could not spawn the agent");
    this.pid = this.child.pid;
    liveGroups.add(this.pid);
    this.#collect("stdout");
    this.#collect("stderr");
    this.exited = new Promise((resolve) => {
      this.child.once("close", (code, signal) => {
        liveGroups.delete(this.pid);
        this.#exit = { code, signal };
        resolve(this.#exit);
      });
    });
  }

  #collect(stream: "stdout" | "stderr"): void {
    const source = this.child[stream];
    if (source === null) return;
    source.setEncoding("utf8");
    let partial = "";
    const emit = (text: string) => {
      const line = { stream, text };
      this.output.push(line);
      for (const listener of this.#lineListeners) listener(line);
    };
    source.on("data", (chunk: string) => {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop() ?? "";
      for (const part of parts) emit(part);
    });
    source.on("end", () => {
      if (partial !== "") emit(partial);
      partial = "";
    });
  }

  get exit(): Exit | undefined {
    return this.#exit;
  }

  get stdout(): string {
    return this.#text("stdout");
  }

  get stderr(): string {
    return this.#text("stderr");
  }

  #text(stream: "stdout" | "stderr"): string {
    return this.output
      .filter((l) => l.stream === stream)
      .map((l) => `${l.text}\n`)
      .join("");
  }

  /** The JSON log lines of stdout, parsed. */
  logs(): AgentLog[] {
    const out: AgentLog[] = [];
    for (const line of this.output) {
      const log = parse(line);
      if (log !== undefined) out.push(log);
    }
    return out;
  }

  /**
   * Waits for a JSON log line matching `predicate` (one already written
   * counts) and returns it. Rejects with the agent's output when `timeoutMs`
   * passes or the agent exits first.
   */
  waitForLog(predicate: (log: AgentLog) => boolean, timeoutMs = 20_000): Promise<AgentLog> {
    return new Promise((resolve, reject) => {
      const match = (line: OutputLine) => {
        const log = parse(line);
        return log !== undefined && predicate(log) ? log : undefined;
      };
      for (const line of this.output) {
        const found = match(line);
        if (found) {
          resolve(found);
          return;
        }
      }
      const done = (err: Error | undefined, log?: AgentLog) => {
        clearTimeout(timer);
        this.#lineListeners.delete(onLine);
        if (err) reject(err);
        else if (log) resolve(log);
      };
      const onLine = (line: OutputLine) => {
        const found = match(line);
        if (found) done(undefined, found);
      };
      const timer = setTimeout(
        () => done(this.#failure(`logged no matching line within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.#lineListeners.add(onLine);
      void this.exited.then((exit) => {
        // Output is complete at "close": a last matching line was seen by now.
        if (this.#lineListeners.has(onLine)) {
          done(this.#failure(`exited (${describeExit(exit)}) before logging a matching line`));
        }
      });
    });
  }

  /** Waits for the process to exit on its own; kills it and rejects past `timeoutMs`. */
  async waitForExit(timeoutMs = 30_000): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    const result = await Promise.race([this.exited, timedOut]);
    clearTimeout(timer);
    if (result === "timeout") {
      this.kill();
      await this.exited;
      throw this.#failure(`was still running after ${timeoutMs} ms`);
    }
    return result;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.#exit === undefined) this.child.kill(signal);
  }

  /** SIGTERM, then SIGKILL of the group past `timeoutMs`. Returns how it ended. */
  async stop(timeoutMs = 15_000): Promise<Exit> {
    if (this.#exit !== undefined) return this.#exit;
    this.signal("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    const result = await Promise.race([this.exited, timedOut]);
    clearTimeout(timer);
    if (result === "timeout") this.kill();
    return this.exited;
  }

  /** SIGKILLs the agent's process group at once (kill -9). */
  kill(): void {
    if (this.#exit !== undefined) return;
    try {
      process.kill(-this.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }

  #failure(what: string): Error {
    const tail = (text: string) => text.split("\n").slice(-40).join("\n");
    return new Error(
      `coffer-agent (pid ${this.pid}) ${what}\n--- stderr ---\n${tail(this.stderr)}\n--- stdout ---\n${tail(this.stdout)}`,
    );
  }
}

function parse(line: OutputLine): AgentLog | undefined {
  if (line.stream !== "stdout") return undefined;
  try {
    const value: unknown = JSON.parse(line.text);
    return typeof value === "object" && value !== null ? (value as AgentLog) : undefined;
  } catch {
    return undefined;
  }
}

/** Options of {@link spawnAgent}. */
export interface AgentOptions {
  /** The config file (see {@link writeAgentConfig}). */
  config: string;
  once?: boolean;
  /** The token, passed as COFFER_TOKEN. */
  token?: string;
  /** More environment; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  cwd?: string;
}

/**
 * Spawns `coffer-agent --config <file> [--once]` with the runner's
 * environment less every COFFER_* variable, plus COFFER_TOKEN. Stop it in
 * afterAll/afterEach.
 */
export function spawnAgent(options: AgentOptions): AgentProcess {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("COFFER_")) env[key] = value;
  }
  if (options.token !== undefined) env.COFFER_TOKEN = options.token;
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  const args = ["--config", options.config, ...(options.once ? ["--once"] : [])];
  return new AgentProcess(args, env, options.cwd ?? path.dirname(options.config));
}

/**
 * Writes an agent config. JSON is YAML, so the object is written as JSON;
 * keys are the config's own (snake_case).
 */
export async function writeAgentConfig(
  file: string,
  config: Record<string, unknown>,
): Promise<string> {
  await writeFile(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}
