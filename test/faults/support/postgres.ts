import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chown, mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import postgres from "postgres";
import { freePort } from "../../support/ports.ts";
import { makeTempDir } from "../../support/temp-dir.ts";

const run = promisify(execFile);

/**
 * The shared Postgres the fault tests create their databases in. CI sets
 * TEST_DATABASE_URL; without it the fault suites skip, and under CI they
 * fail rather than skip.
 */
export const testDatabaseUrl = process.env.TEST_DATABASE_URL;
if (process.env.CI && !testDatabaseUrl) {
  throw new Error("CI is set but TEST_DATABASE_URL is not: the fault tests must run on Postgres");
}
if (!testDatabaseUrl) {
  console.warn("TEST_DATABASE_URL is not set: SKIPPING the fault tests, which need Postgres");
}

/** A database of its own for one test file, and the server settings that use it. */
export interface FreshDatabase {
  /** COFFER_DATABASE_URL and COFFER_MASTER_KEYS for a server on it. */
  env: Record<string, string>;
  /** Drops the database (closing whatever still holds a connection). */
  drop(): Promise<void>;
}

/** Creates an empty database, uniquely named, in the Postgres of TEST_DATABASE_URL. */
export async function freshDatabase(label: string): Promise<FreshDatabase> {
  if (!testDatabaseUrl) throw new Error("TEST_DATABASE_URL is not set");
  const admin = postgres(testDatabaseUrl, { max: 1, onnotice: () => {} });
  const name = `coffer_faults_${label}_${randomBytes(5).toString("hex")}`;
  await admin.unsafe(`create database ${name}`);
  const url = new URL(testDatabaseUrl);
  url.pathname = `/${name}`;
  return {
    env: {
      COFFER_DATABASE_URL: url.toString(),
      COFFER_MASTER_KEYS: `faults-1:${randomBytes(32).toString("base64")}`,
    },
    drop: async () => {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}

const PG_BIN = "/usr/lib/postgresql/15/bin";

/**
 * A private Postgres cluster, so that a test may stop and start it without
 * touching the Postgres other tests use: initdb into a temporary folder,
 * trust authentication, 127.0.0.1 on a free port, its unix socket in the
 * same folder. Postgres refuses to run as root, so it runs as `postgres`.
 */
export class PrivatePostgres {
  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  /** `postgres://postgres@127.0.0.1:<port>/postgres`. */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  get #data(): string {
    return path.join(this.dir, "data");
  }

  /** Initialises and starts a cluster; removes what it made when that fails. */
  static async create(): Promise<PrivatePostgres> {
    const dir = await makeTempDir("private-pg");
    try {
      await mkdir(path.join(dir, "data"));
      await mkdir(path.join(dir, "socket"));
      // uid/gid of the postgres account, from the system's own tools.
      const uid = Number((await run("id", ["-u", "postgres"])).stdout.trim());
      const gid = Number((await run("id", ["-g", "postgres"])).stdout.trim());
      for (const p of [dir, path.join(dir, "data"), path.join(dir, "socket")]) {
        await chown(p, uid, gid);
      }
      await asPostgres("initdb", [
        "-D",
        path.join(dir, "data"),
        "-U",
        "postgres",
        "--auth=trust",
        "--no-sync",
        "--encoding=UTF8",
      ]);
      const port = await freePort();
      await writeFile(
        path.join(dir, "data", "postgresql.auto.conf"),
        [
          `port = ${port}`,
          "listen_addresses = '127.0.0.1'",
          `unix_socket_directories = '${path.join(dir, "socket")}'`,
          // Small and fast: a test cluster, thrown away afterwards.
          "fsync = off",
          "shared_buffers = 16MB",
          "max_connections = 50",
          "",
        ].join("\n"),
      );
      await chown(path.join(dir, "data", "postgresql.auto.conf"), uid, gid);
      const pg = new PrivatePostgres(dir, port);
      await pg.start();
      return pg;
    } catch (err) {
      await stopCluster(path.join(dir, "data")).catch(() => {});
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Starts the cluster and waits until it accepts connections. */
  async start(): Promise<void> {
    await asPostgres("pg_ctl", [
      "-D",
      this.#data,
      "-l",
      path.join(this.dir, "postgres.log"),
      "-w",
      "-t",
      "60",
      "start",
    ]);
  }

  /** Stops the cluster: `fast` ends sessions cleanly, `immediate` aborts like a crash. */
  async stop(mode: "fast" | "immediate"): Promise<void> {
    await stopCluster(this.#data, mode);
  }

  /** Stops the cluster if it runs and removes its folder. */
  async destroy(): Promise<void> {
    await stopCluster(this.#data).catch(() => {});
    await rm(this.dir, { recursive: true, force: true });
  }
}

async function stopCluster(data: string, mode: "fast" | "immediate" = "immediate"): Promise<void> {
  await asPostgres("pg_ctl", ["-D", data, "-m", mode, "-w", "-t", "60", "stop"]);
}

async function asPostgres(program: string, args: string[]): Promise<void> {
  try {
    await run("runuser", ["-u", "postgres", "--", path.join(PG_BIN, program), ...args], {
      timeout: 90_000,
    });
  } catch (err) {
    const e = err as Error & { stderr?: string; stdout?: string };
    throw new Error(`${program} ${args.at(-1)} failed: ${e.message}\n${e.stderr ?? ""}`);
  }
}
