import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, rename, rm, rmdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import type { PGlite } from "@electric-sql/pglite";
import type { ExtractTablesWithRelations } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from "drizzle-orm/pg-core";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import postgres from "#postgres";
import { type DataDirLock, lockDataDir } from "./data-dir-lock.ts";
import { byteaFromHex } from "./pglite-statements.ts";
import * as schema from "./schema.ts";

export type Schema = typeof schema;
/** A drizzle database over either driver; domain code never knows which. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
export type Tx = PgTransaction<PgQueryResultHKT, Schema, ExtractTablesWithRelations<Schema>>;
/** What repositories take: the database, or the transaction they run in. */
export type Executor = Db | Tx;

export interface Database {
  readonly db: Db;
  readonly driver: "postgres" | "pglite";
  /** Answers whether the database is reachable (for health checks). */
  ping(): Promise<boolean>;
  /**
   * LISTENs on a channel; `onNotify` gets each notification's payload.
   * `onListen` runs each time the listening connection is (re)established,
   * when notifications may have been missed. Resolves to a function that
   * stops listening.
   */
  listen(
    channel: string,
    onNotify: (payload: string) => void,
    onListen: () => void,
  ): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export type DatabaseTarget =
  | { driver: "postgres"; url: string; poolSize: number }
  | { driver: "pglite"; dataDir: string | undefined; template?: PgliteTemplate | undefined };

/**
 * What an in-memory embedded database can start as instead of running
 * initdb (seconds of WebAssembly per database): tests open hundreds of
 * databases, each from one prepared data folder.
 */
export interface PgliteTemplate {
  /** A data folder as PGlite's `dumpDataDir("none")` writes it (a tar). */
  dataDir: Blob;
  /** PGlite's WebAssembly (pglite.wasm), compiled once for every database made from the template. */
  wasmModule: WebAssembly.Module;
  /** PGlite's file system bundle (pglite.data), read once likewise. */
  fsBundle: Blob;
}

/**
 * How long one connection attempt may take before the query waiting for it
 * fails (CONNECT_TIMEOUT, answered UNAVAILABLE). postgres-js waits 30 s by
 * default, longer than a client's deadline, so that a database that accepts
 * TCP but does not answer would turn into DEADLINE_EXCEEDED instead.
 */
const CONNECT_TIMEOUT_S = 5;
/** The longest pause between two attempts of a pool connection to reconnect. */
const MAX_RECONNECT_DELAY_S = 0.5;

/**
 * Seconds before a pool connection that failed tries again, given how many
 * attempts have failed in a row across the pool. While every connection is
 * down, queries queue for the next attempt, which fails the one it carries at
 * once (refused: UNAVAILABLE), so this delay bounds both how long calls wait
 * while the database is down and how soon they succeed after it returns.
 * postgres-js grows it to 20 s by default (3^n / 100 s): calls then queued
 * until their deadline, and a restarted database was used again only after
 * 7-8 s. Jittered so that the connections of many replicas do not retry in step.
 */
export function reconnectDelay(failures: number): number {
  return Math.min(0.01 * 2 ** failures, MAX_RECONNECT_DELAY_S) * (0.5 + Math.random() / 2);
}

/**
 * Opens a region's database: Postgres through the `postgres` driver, or an
 * embedded PGlite in a folder (in memory when `dataDir` is undefined, for
 * tests, from `template` when given), locked for this process until closed
 * (see lockDataDir).
 */
export async function openDatabase(target: DatabaseTarget): Promise<Database> {
  if (target.driver === "postgres") {
    const client = postgres(target.url, {
      max: target.poolSize,
      onnotice: () => {},
      connection: { application_name: "coffer-server" },
      connect_timeout: CONNECT_TIMEOUT_S,
      backoff: reconnectDelay,
    });
    const db = drizzlePostgres({ client, schema }) as unknown as Db;
    return {
      db,
      driver: "postgres",
      ping: () => ping(db),
      // postgres-js listens on a connection of its own, outside the pool,
      // and reconnects it (calling onListen again) when it drops.
      listen: async (channel, onNotify, onListen) => {
        const { unlisten } = await client.listen(channel, onNotify, onListen);
        return unlisten;
      },
      close: () => client.end({ timeout: 5 }),
    };
  }
  if (target.template !== undefined && target.dataDir !== undefined) {
    throw new Error("a PGlite template makes an in-memory database: give no dataDir");
  }
  let lock: DataDirLock | undefined;
  if (target.dataDir !== undefined) {
    await mkdir(path.dirname(path.resolve(target.dataDir)), { recursive: true, mode: 0o700 });
    // PGlite takes no lock of its own: two processes on one folder lose
    // acknowledged writes. In memory, there is nothing to share.
    lock = await lockDataDir(target.dataDir);
  }
  let client: PGlite;
  let drizzlePglite: typeof import("drizzle-orm/pglite").drizzle;
  try {
    // Loaded only for the embedded database: a Postgres server never pays
    // for PGlite's code (about 40 MB of RSS under tsx).
    // V8 compiles PGlite's 9 MB of WebAssembly with its baseline compiler
    // (Liftoff), then recompiles hot functions with TurboFan, whose code and
    // compilation memory cost about 50 MB of RSS; baseline code alone serves
    // a secret store's queries as fast on measure (bench/RESULTS.md, "Idle
    // memory"). The flag is read when a module is compiled and concerns only
    // WebAssembly; the server compiles no other.
    setFlagsFromString("--liftoff-only");
    const [pglite, driver] = await Promise.all([
      import("@electric-sql/pglite"),
      import("drizzle-orm/pglite"),
    ]);
    drizzlePglite = driver.drizzle;
    if (target.dataDir !== undefined) await initDataDir(target.dataDir);
    const template = target.template;
    client = await pglite.PGlite.create(target.dataDir ?? "memory://", {
      startParams: [...pglite.PGlite.defaultStartParams, ...PGLITE_SETTINGS],
      parsers: { [pglite.types.BYTEA]: byteaFromHex },
      ...(template !== undefined && {
        loadDataDir: template.dataDir,
        pgliteWasmModule: template.wasmModule,
        fsBundle: template.fsBundle,
      }),
    });
  } catch (err) {
    await lock?.release();
    throw err;
  }
  const db = drizzlePglite({ client, schema }) as unknown as Db;
  lock?.onLost(() => {
    // Without the lock another process may open the folder: stop writing now.
    process.stderr.write(
      `coffer-server: lost the lock on ${target.dataDir} (its flock helper was killed); closing the embedded database\n`,
    );
    void client.close();
  });
  return {
    db,
    driver: "pglite",
    ping: () => ping(db),
    listen: async (channel, onNotify, onListen) => {
      const unlisten = await client.listen(channel, onNotify);
      onListen();
      return unlisten;
    },
    close: async () => {
      try {
        // Already closed when the lock was lost.
        if (!client.closed) await client.close();
      } finally {
        await lock?.release();
      }
    },
  };
}

/**
 * Settings the embedded Postgres starts with, after PGlite's own (which are
 * kept: durability is unchanged). shared_buffers is Postgres's page cache
 * inside PGlite's WebAssembly memory, and its 128 MB default is touched and
 * held whole from the start: 16 MB (2,048 pages) holds a secret store's
 * working set, and pages beyond it are still cached by the kernel.
 */
const PGLITE_SETTINGS = ["-c", "shared_buffers=16MB"];

/**
 * Creates an embedded database folder that does not exist yet, in a child
 * process: PGlite runs initdb in a second WebAssembly instance that stays
 * reachable from the first for as long as it is open (about 450 MB of RSS
 * held by a server forever after its first start); the child's memory goes
 * back to the system when it exits. It builds the database beside the
 * folder and renames it into place, so that a crash never leaves a
 * half-initialised folder that the next start would take for a database.
 * A folder that already holds anything is left to PGlite.
 */
async function initDataDir(dataDir: string): Promise<void> {
  const folder = path.resolve(dataDir);
  if (existsSync(path.join(folder, "PG_VERSION"))) return;
  if (existsSync(folder) && (await readdir(folder)).length > 0) return;
  const building = `${folder}.initdb`;
  await rm(building, { recursive: true, force: true });
  await mkdir(building, { mode: 0o700 });
  const script = fileURLToPath(new URL("./pglite-initdb.mjs", import.meta.url));
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, [script, building], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.once("error", reject);
    child.once("close", (code, signal) => {
      if (code === 0) resolve();
      else {
        reject(
          new Error(
            `cannot create the embedded database in ${folder} (initdb exit ${code ?? signal}): ${stderr.trim().slice(-2000)}`,
          ),
        );
      }
    });
  });
  if (existsSync(folder)) await rmdir(folder);
  await rename(building, folder);
}

async function ping(db: Db): Promise<boolean> {
  try {
    await db.execute("select 1");
    return true;
  } catch {
    return false;
  }
}
