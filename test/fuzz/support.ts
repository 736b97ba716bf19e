import { randomBytes } from "node:crypto";
import { cp, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { AdminService, SecretService } from "@coffer/api";
import { createCofferTransport } from "@coffer/client";
import { type Client, createClient } from "@connectrpc/connect";
import { PGlite } from "@electric-sql/pglite";
import postgres from "postgres";
import { newToken, type ServerProcess, startServer } from "../support/server-process.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * What the fuzz suites share: a server process on a fresh database (a new
 * Postgres database when TEST_DATABASE_URL is set, the embedded PGlite in a
 * fresh data folder otherwise), snapshots of that database, the server's
 * resident memory, and the seed every property runs with.
 */

/** TEST_DATABASE_URL, or undefined: the suites then run on the embedded PGlite (under CI they fail). */
export const testDatabaseUrl = process.env.TEST_DATABASE_URL;
if (process.env.CI && !testDatabaseUrl) {
  throw new Error(
    "CI is set but TEST_DATABASE_URL is not: the fuzz suites must run on Postgres in CI",
  );
}

/**
 * The seed of every property, fixed so that a failure reproduces; override
 * with FUZZ_SEED to explore further. Printed by each suite.
 */
export const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20_240_606);

/** A fuzz server: the process and a way to snapshot its database. */
export interface FuzzServer {
  server: ServerProcess;
  backend: "postgres" | "pglite";
  /** Row counts and digests of Coffer's tables (see {@link snapshotTables}). */
  snapshot(): Promise<Record<string, string>>;
  stop(): Promise<void>;
}

/**
 * Starts a server on a fresh database, Postgres when TEST_DATABASE_URL is set,
 * else PGlite, with `env` over the suite's settings.
 */
export function startFuzzServer(
  label: string,
  env: Record<string, string> = {},
): Promise<FuzzServer> {
  return testDatabaseUrl ? startOnPostgres(label, testDatabaseUrl, env) : startOnPglite(label, env);
}

/** A server on a new Postgres database named `coffer_fuzz_<label>_<random>`. */
async function startOnPostgres(
  label: string,
  testUrl: string,
  env: Record<string, string>,
): Promise<FuzzServer> {
  const admin = postgres(testUrl, { max: 1, onnotice: () => {} });
  const databaseName = `coffer_fuzz_${label}_${randomBytes(5).toString("hex")}`;
  await admin.unsafe(`create database ${databaseName}`);
  const url = new URL(testUrl);
  url.pathname = `/${databaseName}`;
  const dataDir = await makeTempDir(`fuzz-${label}`);
  let server: ServerProcess | undefined;
  let sql: postgres.Sql | undefined;
  const stop = async () => {
    server?.kill();
    if (server) await server.exited;
    await sql?.end();
    await admin.unsafe(`drop database if exists ${databaseName} with (force)`);
    await admin.end();
    await removeTempDir(dataDir);
  };
  try {
    server = await startServer({
      env: {
        COFFER_DATABASE_URL: url.toString(),
        COFFER_MASTER_KEYS: `fuzz-1:${randomBytes(32).toString("base64")}`,
        COFFER_BOOTSTRAP_TOKEN: newToken(),
        COFFER_DATA_DIR: dataDir,
        ...env,
      },
    });
    sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
  } catch (err) {
    await stop();
    throw err;
  }
  const db = sql;
  return {
    server,
    backend: "postgres",
    snapshot: () => snapshotTables((text) => db.unsafe(text)),
    stop,
  };
}

/**
 * A server on the embedded PGlite in a fresh data folder. The server holds
 * that folder alone, so a snapshot reads a copy: the server is paused
 * (SIGSTOP) while its region folder is copied, then resumed; PGlite writes
 * through to the files, so the copy is what a crash at that instant would
 * leave, and opening it replays the WAL like a restart after kill -9. Every
 * call the test made has been answered by then, so everything it changed is
 * committed in the copy.
 */
async function startOnPglite(label: string, env: Record<string, string>): Promise<FuzzServer> {
  const dataDir = await makeTempDir(`fuzz-${label}`);
  const copies = await makeTempDir(`fuzz-${label}-snapshots`);
  let server: ServerProcess | undefined;
  const stop = async () => {
    server?.kill();
    if (server) await server.exited;
    await removeTempDir(dataDir);
    await removeTempDir(copies);
  };
  try {
    server = await startServer({
      env: { COFFER_BOOTSTRAP_TOKEN: newToken(), COFFER_DATA_DIR: dataDir, ...env },
    });
  } catch (err) {
    await stop();
    throw err;
  }
  const running = server;
  let n = 0;
  const snapshot = async () => {
    const copy = path.join(copies, String(n++));
    process.kill(running.pid, "SIGSTOP");
    try {
      await cp(path.join(dataDir, "regions", "local"), copy, { recursive: true });
    } finally {
      process.kill(running.pid, "SIGCONT");
    }
    const db = await PGlite.create(copy);
    try {
      return await snapshotTables(async (text) => (await db.query(text)).rows as never);
    } finally {
      await db.close();
      await rm(copy, { recursive: true, force: true });
    }
  };
  return { server, backend: "pglite", snapshot, stop };
}

/** Tables whose rows a rejected request may add to: failures are audited, and watch state is internal. */
const UNSNAPSHOTTED = new Set(["audit_events", "watch_events", "watch_state"]);

/**
 * Row count and an md5 of every row (as text, sorted) of every table in the
 * public schema but the audit trail and the watch outbox: two equal
 * snapshots mean no row was added, removed or changed.
 */
export async function snapshotTables(
  query: <Row>(text: string) => Promise<Row[]>,
): Promise<Record<string, string>> {
  const tables = await query<{ table_name: string }>(
    `select table_name from information_schema.tables
    where table_schema = 'public' and table_type = 'BASE TABLE' order by table_name`,
  );
  const snapshot: Record<string, string> = {};
  for (const { table_name: table } of tables) {
    if (UNSNAPSHOTTED.has(table)) continue;
    const [row] = await query<{ n: number; digest: string | null }>(
      `select count(*)::int as n, md5(string_agg(t::text, '|' order by t::text)) as digest from "${table}" t`,
    );
    snapshot[table] = `${row?.n} rows, md5 ${row?.digest}`;
  }
  if (!("secrets" in snapshot && "secret_versions" in snapshot && "tokens" in snapshot)) {
    throw new Error(`the snapshot misses Coffer's tables: ${Object.keys(snapshot).join(", ")}`);
  }
  return snapshot;
}

/** The resident set size of a process, in bytes, from /proc/<pid>/status. */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (match === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/**
 * Memory growth allowed between a warmed-up baseline and the end of a fuzz
 * run, after a settle. V8 grows its heap lazily and gives pages back only
 * after a major GC that nothing forces here; the young generation alone may
 * hold 16-32 MiB of garbage, and malloc arenas for TLS/HTTP/2 buffers keep
 * some more. Since the server starts smaller (about 40 MiB less since
 * PGlite's buffers shrank and its WebAssembly is compiled by Liftoff only),
 * it grows more on the way to the same working size: 10,200 fuzzed requests
 * took it from 158-166 MiB to 207-235 MiB in three runs, where it went from
 * 201 to 219 MiB before. 96 MiB covers that slack, while a leak of a request's
 * worth of anything (a retained 64 KiB payload for each of 10,000 requests
 * would be 640 MiB) or per connection shows far above it.
 */
export const MAX_RSS_GROWTH_BYTES = 96 * 1024 * 1024;

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The clients of one protocol. */
export interface Clients {
  label: string;
  secrets: Client<typeof SecretService>;
  admin: Client<typeof AdminService>;
}

/**
 * gRPC (to grpc-js), then Connect JSON over HTTP/2, gRPC-Web binary over
 * HTTP/1.1 and Connect JSON over HTTP/1.1 (to connect-node), with `token`.
 */
export function clientsFor(server: ServerProcess, token: string | undefined): Clients[] {
  const make = (label: string, options: Parameters<typeof createCofferTransport>[0]): Clients => {
    const transport = createCofferTransport({
      ...options,
      timeoutMs: 20_000,
      ...(token !== undefined && { token }),
    });
    return {
      label,
      secrets: createClient(SecretService, transport),
      admin: createClient(AdminService, transport),
    };
  };
  return [
    make("grpc", { url: server.grpcUrl, protocol: "grpc" }),
    make("connect-h2", { url: server.httpUrl, protocol: "connect", httpVersion: "2" }),
    make("grpc-web-h1", { url: server.httpUrl, protocol: "grpc-web", httpVersion: "1.1" }),
    make("connect-h1", { url: server.httpUrl, protocol: "connect", httpVersion: "1.1" }),
  ];
}
