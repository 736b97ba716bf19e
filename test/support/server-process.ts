import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { generateToken } from "@coffer/server";

/** The repository root (`/work/main` in CI). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** The server's entry point, the file `npm start` runs (`tsx src/main.ts`). */
export const SERVER_MAIN = path.join(REPO_ROOT, "packages/server/src/main.ts");

/** The proto folder, for clients that load the .proto files themselves. */
export const PROTO_DIR = path.join(REPO_ROOT, "proto");

/**
 * The server runs as one node process with tsx's loader, not under the tsx
 * command line (what `npm start` runs): the tsx CLI is a second process that
 * relays SIGTERM and, when the server has not acknowledged the signal over
 * tsx's IPC channel within 30 ms, SIGKILLs it and exits with 143. A server
 * busy with calls misses that window, so graceful shutdown cannot be tested
 * through it; production should not run under the tsx CLI either.
 */
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;

/** How a process ended: an exit code, or the signal that killed it. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One line the process wrote, in the order it was read. */
export interface OutputLine {
  stream: "stdout" | "stderr";
  text: string;
}

/** A fresh, well-formed Coffer token, for COFFER_BOOTSTRAP_TOKEN. */
export function newToken(): string {
  return generateToken().value;
}

/** Environment for one server: `undefined` removes a variable. */
export type ServerEnv = Record<string, string | undefined>;

/**
 * The environment of a server process: the test runner's environment without
 * any COFFER_* setting (a developer's shell must not change what a test
 * sees), both listeners on 127.0.0.1 port 0, then `overrides`.
 */
export function serverEnv(overrides: ServerEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("COFFER_")) env[key] = value;
  }
  env.COFFER_GRPC_LISTEN = "127.0.0.1:0";
  env.COFFER_HTTP_LISTEN = "127.0.0.1:0";
  env.COFFER_LOG_LEVEL = "info";
  // Load tests here are about draining and races, not the per-token rate
  // limit, which has tests of its own (packages/server/src/rpc/limits.test.ts).
  env.COFFER_RATE_LIMIT_RPS = "0";
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

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
 * A `coffer-server` child process. Its stdout and stderr are kept line by
 * line for assertions (and for the error when it fails to start).
 */
export class ServerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Every line of stdout and stderr, in order of arrival per stream. */
  readonly output: OutputLine[] = [];
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<Exit>;
  /** COFFER_BOOTSTRAP_TOKEN as given to this process, if it was. */
  readonly #bootstrapToken: string | undefined;
  #exit: Exit | undefined;
  #ready: { grpc: string; http: string } | undefined;
  #lineListeners = new Set<(line: OutputLine) => void>();

  constructor(env: NodeJS.ProcessEnv, cwd: string) {
    this.#bootstrapToken = env.COFFER_BOOTSTRAP_TOKEN;
    // detached: the server gets a process group of its own, so that the
    // SIGKILL fallback also reaches anything it started.
    this.child = spawn(process.execPath, ["--import", TSX_LOADER, SERVER_MAIN], {
      cwd,
      env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    if (this.child.pid === undefined) throw new Error("could not spawn the server");
    this.pid = this.child.pid;
    liveGroups.add(this.pid);
    this.#collect("stdout");
    this.#collect("stderr");
    this.exited = new Promise((resolve) => {
      // "close" rather than "exit": it comes after stdout and stderr have
      // ended, so the output is complete when this resolves.
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

  /**
   * The admin token this process was started with (COFFER_BOOTSTRAP_TOKEN).
   * The server creates it only on an empty database and ignores it on any
   * other, so a server started on a database that already has tokens must be
   * given the value the first server created. Throws for a server started
   * without one, rather than let a client go out without a token.
   */
  get token(): string {
    if (this.#bootstrapToken === undefined) {
      throw new Error("this server was started without COFFER_BOOTSTRAP_TOKEN");
    }
    return this.#bootstrapToken;
  }

  /** The exit status, once the process has exited. */
  get exit(): Exit | undefined {
    return this.#exit;
  }

  /** stdout, as written. */
  get stdout(): string {
    return this.#text("stdout");
  }

  /** stderr, as written. */
  get stderr(): string {
    return this.#text("stderr");
  }

  #text(stream: "stdout" | "stderr"): string {
    return this.output
      .filter((l) => l.stream === stream)
      .map((l) => `${l.text}\n`)
      .join("");
  }

  /** The JSON log lines of stdout, parsed; lines that are not JSON are skipped. */
  logs(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const line of this.output) {
      if (line.stream !== "stdout") continue;
      try {
        const value: unknown = JSON.parse(line.text);
        if (typeof value === "object" && value !== null) out.push(value as Record<string, unknown>);
      } catch {
        // Not a log line.
      }
    }
    return out;
  }

  /**
   * Waits for a JSON log line matching `predicate` and returns it. A log line
   * is written before the response it describes is sent, but it comes
   * through a different pipe, so it may be read after the response.
   */
  waitForLog(
    predicate: (log: Record<string, unknown>) => boolean,
    timeoutMs = 10_000,
  ): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const match = (line: OutputLine) => {
        if (line.stream !== "stdout") return undefined;
        try {
          const log: unknown = JSON.parse(line.text);
          if (typeof log !== "object" || log === null) return undefined;
          return predicate(log as Record<string, unknown>)
            ? (log as Record<string, unknown>)
            : undefined;
        } catch {
          return undefined;
        }
      };
      for (const line of this.output) {
        const found = match(line);
        if (found) {
          resolve(found);
          return;
        }
      }
      const timer = setTimeout(() => {
        this.#lineListeners.delete(onLine);
        reject(this.#failure(`logged no matching line within ${timeoutMs} ms`));
      }, timeoutMs);
      const onLine = (line: OutputLine) => {
        const found = match(line);
        if (found) {
          clearTimeout(timer);
          this.#lineListeners.delete(onLine);
          resolve(found);
        }
      };
      this.#lineListeners.add(onLine);
    });
  }

  /**
   * Waits for the "coffer is serving" line and records the ports it names.
   * Rejects, with the process's output, when the process exits first or
   * when `timeoutMs` passes.
   */
  waitForReady(timeoutMs = 90_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (line: OutputLine): boolean => {
        if (line.stream !== "stdout" || !line.text.includes("coffer is serving")) return false;
        const log = JSON.parse(line.text) as { grpc?: unknown; http?: unknown };
        if (typeof log.grpc !== "string" || typeof log.http !== "string") {
          throw new Error(`"coffer is serving" line without grpc and http: ${line.text}`);
        }
        this.#ready = { grpc: log.grpc, http: log.http };
        return true;
      };
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.#lineListeners.delete(onLine);
        if (err) reject(err);
        else resolve();
      };
      const onLine = (line: OutputLine) => {
        try {
          if (check(line)) done();
        } catch (err) {
          done(err as Error);
        }
      };
      const timer = setTimeout(
        () => done(this.#failure(`not ready after ${timeoutMs} ms`)),
        timeoutMs,
      );
      for (const line of this.output) {
        if (check(line)) {
          done();
          return;
        }
      }
      this.#lineListeners.add(onLine);
      void this.exited.then((exit) => {
        if (this.#ready === undefined)
          done(this.#failure(`exited before ready (${describeExit(exit)})`));
      });
    });
  }

  #failure(what: string): Error {
    const tail = (text: string) => text.split("\n").slice(-40).join("\n");
    return new Error(
      `coffer-server (pid ${this.pid}) ${what}\n--- stderr ---\n${tail(this.stderr)}\n--- stdout ---\n${tail(this.stdout)}`,
    );
  }

  #address(kind: "grpc" | "http"): string {
    if (this.#ready === undefined) throw new Error("the server is not ready");
    return this.#ready[kind];
  }

  /** The gRPC listener as logged, `host:port`. */
  get grpcAddress(): string {
    return this.#address("grpc");
  }

  /** The Connect/gRPC-Web listener as logged, `host:port`. */
  get httpAddress(): string {
    return this.#address("http");
  }

  /** `http://host:port` of the gRPC listener. */
  get grpcUrl(): string {
    return toUrl(this.grpcAddress);
  }

  /** `http://host:port` of the Connect/gRPC-Web listener. */
  get httpUrl(): string {
    return toUrl(this.httpAddress);
  }

  /** Sends a signal to the server process. */
  signal(signal: NodeJS.Signals): void {
    if (this.#exit === undefined) this.child.kill(signal);
  }

  /**
   * Stops the server: SIGTERM, then waits up to `timeoutMs` for it to exit;
   * past that, SIGKILLs its whole process group. Returns how it ended.
   */
  async stop(timeoutMs = 20_000): Promise<Exit> {
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

  /** SIGKILLs the server's process group at once. */
  kill(): void {
    if (this.#exit !== undefined) return;
    try {
      process.kill(-this.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

function toUrl(address: string): string {
  const colon = address.lastIndexOf(":");
  const host = address.slice(0, colon);
  return `http://${host.includes(":") ? `[${host}]` : host}:${address.slice(colon + 1)}`;
}

export function describeExit(exit: Exit): string {
  return exit.signal !== null ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}

/** Options of {@link spawnServer} and {@link startServer}. */
export interface ServerOptions {
  /**
   * Settings over {@link serverEnv}'s defaults; `undefined` removes one.
   * COFFER_BOOTSTRAP_TOKEN defaults to a fresh token (see
   * {@link ServerProcess.token}); set it to `undefined` for a server that
   * makes and prints its own.
   */
  env?: ServerEnv;
  /** Working directory; defaults to packages/server, as `npm start` runs. */
  cwd?: string;
}

/** Spawns a server without waiting for it. Stop it in afterAll/afterEach. */
export function spawnServer(options: ServerOptions = {}): ServerProcess {
  const env = options.env ?? {};
  return new ServerProcess(
    serverEnv(
      Object.hasOwn(env, "COFFER_BOOTSTRAP_TOKEN")
        ? env
        : { COFFER_BOOTSTRAP_TOKEN: newToken(), ...env },
    ),
    options.cwd ?? path.join(REPO_ROOT, "packages/server"),
  );
}

/**
 * Spawns a server and waits until it serves. When it does not, kills it and
 * rejects with its output. Stop it in afterAll/afterEach.
 */
export async function startServer(
  options: ServerOptions & { readyTimeoutMs?: number } = {},
): Promise<ServerProcess> {
  const server = spawnServer(options);
  try {
    await server.waitForReady(options.readyTimeoutMs);
  } catch (err) {
    server.kill();
    await server.exited;
    throw err;
  }
  return server;
}

/** What {@link runUntilExit} observed. */
export interface Run {
  exit: Exit;
  stdout: string;
  stderr: string;
  durationMs: number;
  /** Whether the server reached "coffer is serving" before exiting. */
  served: boolean;
}

/**
 * Runs a server that is expected to exit on its own (a configuration error);
 * kills it and rejects when it is still running after `timeoutMs`.
 */
export async function runUntilExit(options: ServerOptions, timeoutMs = 30_000): Promise<Run> {
  const started = performance.now();
  const server = spawnServer(options);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  const result = await Promise.race([server.exited, timedOut]);
  clearTimeout(timer);
  if (result === "timeout") {
    server.kill();
    await server.exited;
    throw new Error(
      `coffer-server was still running after ${timeoutMs} ms\n--- stderr ---\n${server.stderr}\n--- stdout ---\n${server.stdout}`,
    );
  }
  return {
    exit: result,
    stdout: server.stdout,
    stderr: server.stderr,
    durationMs: performance.now() - started,
    served: server.stdout.includes("coffer is serving"),
  };
}
