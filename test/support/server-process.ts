import { randomUUID } from "node:crypto";
import path from "node:path";
import { AdminService, createCofferTransport } from "@coffer/client";
import { generateToken } from "@coffer/server";
import { createClient } from "@connectrpc/connect";
import { describeExit, type Exit, type OutputLine, REPO_ROOT, TsxProcess } from "./tsx-process.ts";

export { describeExit, type Exit, type OutputLine, REPO_ROOT };

/**
 * The server's entry point. `npm start` bundles it (bin/coffer-server.js);
 * tests run it through tsx's loader, which serves the same code.
 */
export const SERVER_MAIN = path.join(REPO_ROOT, "packages/server/src/main.ts");

/** The proto folder, for clients that load the .proto files themselves. */
export const PROTO_DIR = path.join(REPO_ROOT, "proto");

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
  // Likewise the per-address limit on refused calls (rpc/refused-flood.test.ts):
  // the fuzz suite sends many bad tokens from one address on purpose.
  env.COFFER_PEER_RATE_LIMIT_RPS = "0";
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/**
 * A `coffer-server` child process. Its stdout and stderr are kept line by
 * line for assertions (and for the error when it fails to start).
 */
export class ServerProcess extends TsxProcess {
  /** COFFER_BOOTSTRAP_TOKEN as given to this process, if it was. */
  readonly #bootstrapToken: string | undefined;
  #ready: { grpc: string; http: string } | undefined;

  constructor(env: NodeJS.ProcessEnv, cwd: string) {
    super("coffer-server", SERVER_MAIN, [], env, cwd);
    this.#bootstrapToken = env.COFFER_BOOTSTRAP_TOKEN;
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

  /**
   * Creates a project through AdminService with the bootstrap token and
   * returns its id: secrets can be created only in a project that exists.
   */
  async createProject(name = `project-${randomUUID()}`): Promise<string> {
    const transport = createCofferTransport({
      url: this.grpcUrl,
      protocol: "grpc",
      token: this.token,
    });
    const { project } = await createClient(AdminService, transport).createProject({ name });
    if (project === undefined) throw new Error("CreateProject returned no project");
    return project.id;
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
      let stop = () => {};
      const done = (err?: Error) => {
        clearTimeout(timer);
        stop();
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
        () => done(this.failure(`not ready after ${timeoutMs} ms`)),
        timeoutMs,
      );
      for (const line of this.output) {
        if (check(line)) {
          done();
          return;
        }
      }
      stop = this.onLine(onLine);
      void this.exited.then((exit) => {
        if (this.#ready === undefined)
          done(this.failure(`exited before ready (${describeExit(exit)})`));
      });
    });
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
}

function toUrl(address: string): string {
  const colon = address.lastIndexOf(":");
  const host = address.slice(0, colon);
  return `http://${host.includes(":") ? `[${host}]` : host}:${address.slice(colon + 1)}`;
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
