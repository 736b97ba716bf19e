import { randomBytes, randomUUID } from "node:crypto";
import { AdminService } from "@coffer/api";
import { type CofferClient, createCofferClient, createCofferTransport } from "@coffer/client";
import { type Client, createClient } from "@connectrpc/connect";
import type { Browser } from "playwright-core";
import postgres from "postgres";
import { afterAll, beforeAll } from "vitest";
import {
  ConsoleSession,
  ensureConsoleBuilt,
  launchBrowser,
  noBrowserReason,
} from "../support/browser.ts";
import { newToken, type ServerProcess, startServer } from "../support/server-process.ts";
import { runUnless } from "../support/skip.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * What the console's browser tests share: a real `coffer-server` process
 * serving the built console on its HTTP port, on the embedded PGlite or on
 * a fresh Postgres database (TEST_DATABASE_URL), with a project, and plain
 * gRPC clients to check what the clicks did; one Chromium per file.
 */

export const testDatabaseUrl = process.env.TEST_DATABASE_URL;
if (process.env.CI && !testDatabaseUrl) {
  throw new Error("CI is set but TEST_DATABASE_URL is not: the console tests must run on Postgres");
}

export type Backend = "pglite" | "postgres";

/** Suite options: skipped, saying why, without a browser (or, for Postgres, without TEST_DATABASE_URL). */
export function runOn(backend: Backend) {
  if (noBrowserReason !== undefined) return runUnless(noBrowserReason);
  return runUnless(
    backend === "postgres" && !testDatabaseUrl
      ? "needs TEST_DATABASE_URL (the console on Postgres)"
      : undefined,
  );
}

/** A server under test, with what a test needs to check it over gRPC. */
export interface ConsoleServer {
  backend: Backend;
  process: ServerProcess;
  /** The console's origin: the server's HTTP port. */
  baseUrl: string;
  /** The admin token (COFFER_BOOTSTRAP_TOKEN). */
  token: string;
  /** The regions it serves, the default first. */
  regions: string[];
  projectId: string;
  projectName: string;
  /** SecretService over the gRPC port, as the admin. */
  secrets: CofferClient;
  /** AdminService over the gRPC port, as the admin. */
  admin: Client<typeof AdminService>;
  /** SecretService over the gRPC port with another token. */
  secretsAs(token: string): CofferClient;
  stop(): Promise<void>;
}

/**
 * Starts a server on a fresh database of `backend`: PGlite in a new data
 * folder (serving `regions`), or a new Postgres database
 * `coffer_console_<hex>` (one region: several need one database each),
 * dropped by `stop()`; then creates a project.
 */
export async function startConsoleServer(
  backend: Backend,
  options: { regions?: string[]; env?: Record<string, string> } = {},
): Promise<ConsoleServer> {
  await ensureConsoleBuilt();
  const regions = backend === "postgres" ? ["fr-par"] : (options.regions ?? ["fr-par", "nl-ams"]);
  const dataDir = await makeTempDir(`console-${backend}`);
  const token = newToken();
  const env: Record<string, string> = {
    COFFER_BOOTSTRAP_TOKEN: token,
    COFFER_DATA_DIR: dataDir,
    COFFER_REGIONS: regions.join(","),
    ...options.env,
  };
  let dropDatabase = async () => {};
  if (backend === "postgres") {
    if (!testDatabaseUrl) throw new Error("the Postgres suite needs TEST_DATABASE_URL");
    const admin = postgres(testDatabaseUrl, { max: 1, onnotice: () => {} });
    const databaseName = `coffer_console_${randomBytes(6).toString("hex")}`;
    await admin.unsafe(`create database ${databaseName}`);
    const url = new URL(testDatabaseUrl);
    url.pathname = `/${databaseName}`;
    env.COFFER_DATABASE_URL = url.toString();
    env.COFFER_MASTER_KEYS = `console-1:${randomBytes(32).toString("base64")}`;
    dropDatabase = async () => {
      await admin.unsafe(`drop database if exists ${databaseName} with (force)`);
      await admin.end();
    };
  }
  let server: ServerProcess | undefined;
  const stop = async () => {
    server?.kill();
    if (server) await server.exited;
    await dropDatabase();
    await removeTempDir(dataDir);
  };
  try {
    server = await startServer({ env });
    const grpc = (t: string) =>
      createCofferClient({ url: server?.grpcUrl ?? "", protocol: "grpc", token: t });
    const admin = createClient(
      AdminService,
      createCofferTransport({ url: server.grpcUrl, protocol: "grpc", token }),
    );
    const projectName = `quickstart-${randomUUID().slice(0, 8)}`;
    const { project } = await admin.createProject({ name: projectName });
    if (project === undefined) throw new Error("CreateProject returned no project");
    return {
      backend,
      process: server,
      baseUrl: server.httpUrl,
      token,
      regions,
      projectId: project.id,
      projectName,
      secrets: grpc(token),
      admin,
      secretsAs: grpc,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The fixture of one test file: a browser and a server started in
 * beforeAll, stopped in afterAll; `session(name)` opens a fresh context.
 * Sessions are closed after all tests, or by the test with `close()`.
 */
export function useConsole(
  backend: Backend,
  options: { regions?: string[]; env?: Record<string, string> } = {},
) {
  const state: { browser?: Browser; server?: ConsoleServer; sessions: ConsoleSession[] } = {
    sessions: [],
  };
  beforeAll(async () => {
    const [browser, server] = await Promise.allSettled([
      launchBrowser(),
      startConsoleServer(backend, options),
    ]);
    if (browser.status === "fulfilled") state.browser = browser.value;
    if (server.status === "fulfilled") state.server = server.value;
    if (browser.status === "rejected") throw browser.reason;
    if (server.status === "rejected") throw server.reason;
  });
  afterAll(async () => {
    for (const s of state.sessions) await s.close().catch(() => {});
    await state.browser?.close();
    await state.server?.stop();
  });
  return {
    get server(): ConsoleServer {
      if (state.server === undefined) throw new Error("the server did not start");
      return state.server;
    },
    get browser(): Browser {
      if (state.browser === undefined) throw new Error("the browser did not start");
      return state.browser;
    },
    async session(testName: string): Promise<ConsoleSession> {
      const s = await ConsoleSession.open(
        this.browser,
        this.server.baseUrl,
        `${backend}-${testName}`,
      );
      state.sessions.push(s);
      return s;
    },
  };
}
