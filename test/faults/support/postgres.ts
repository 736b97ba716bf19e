import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { chown, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import postgres from "postgres";
import { freePort } from "../../support/ports.ts";
import { makeTempDir } from "../../support/temp-dir.ts";

const run = promisify(execFile);

/**
 * The shared Postgres the fault tests create their databases in. CI sets
 * TEST_DATABASE_URL; without it they run on a private cluster of their own
 * (initdb, see {@link PrivatePostgres}) when the Postgres binaries are
 * installed, and skip, saying why, only when they are not. Under CI a missing
 * TEST_DATABASE_URL fails rather than falls back.
 */
export const testDatabaseUrl = process.env.TEST_DATABASE_URL;
if (process.env.CI && !testDatabaseUrl) {
  throw new Error("CI is set but TEST_DATABASE_URL is not: the fault tests must run on Postgres");
}

/** The folder holding initdb, pg_ctl and postgres: `pg_config --bindir`, else the newest /usr/lib/postgresql/<n>/bin. */
function findPostgresBin(): string | undefined {
  const candidates: string[] = [];
  try {
    candidates.push(execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim());
  } catch {
    // No pg_config (Debian puts it in libpq-dev): look where Debian installs servers.
  }
  try {
    const versions = readdirSync("/usr/lib/postgresql")
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => `/usr/lib/postgresql/${v}/bin`));
  } catch {
    // No Debian Postgres server.
  }
  return candidates.find((dir) => existsSync(path.join(dir, "initdb")));
}

const PG_BIN = findPostgresBin();
/** Postgres refuses to run as root: as root, the cluster runs as the `postgres` account. */
const asRoot = process.getuid?.() === 0;
function hasPostgresAccount(): boolean {
  try {
    execFileSync("id", ["-u", "postgres"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * Why a private cluster cannot be made here, or undefined when it can: the
 * fault suites that need Postgres skip with this reason (and say it in the
 * summary of `npm test`).
 */
export const privatePostgresMissing: string | undefined =
  PG_BIN === undefined
    ? "no Postgres server binaries (initdb, pg_ctl) found and TEST_DATABASE_URL not set"
    : asRoot && !hasPostgresAccount()
      ? "running as root without a postgres account to run a private cluster as, and TEST_DATABASE_URL not set"
      : undefined;

/** Why the suites on a fresh database skip: nothing when TEST_DATABASE_URL is set or a private cluster can be made. */
export const postgresMissing: string | undefined = testDatabaseUrl
  ? undefined
  : privatePostgresMissing;

/** A database of its own for one test file, and the server settings that use it. */
export interface FreshDatabase {
  /** COFFER_DATABASE_URL and COFFER_MASTER_KEYS for a server on it. */
  env: Record<string, string>;
  /** Drops the database (closing whatever still holds a connection). */
  drop(): Promise<void>;
}

/**
 * Creates an empty database, uniquely named, in the Postgres of
 * TEST_DATABASE_URL; without it, in a private cluster made for it, which
 * `drop` removes.
 */
export async function freshDatabase(label: string): Promise<FreshDatabase> {
  if (testDatabaseUrl) return databaseIn(testDatabaseUrl, label, async () => {});
  const cluster = await PrivatePostgres.create();
  try {
    return await databaseIn(cluster.url, label, () => cluster.destroy());
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
}

async function databaseIn(
  serverUrl: string,
  label: string,
  after: () => Promise<void>,
): Promise<FreshDatabase> {
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  const name = `coffer_faults_${label}_${randomBytes(5).toString("hex")}`;
  await admin.unsafe(`create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    env: {
      COFFER_DATABASE_URL: url.toString(),
      COFFER_MASTER_KEYS: `faults-1:${randomBytes(32).toString("base64")}`,
    },
    drop: async () => {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
      await after();
    },
  };
}

/**
 * A private Postgres cluster, so that a test may stop and start it without
 * touching the Postgres other tests use: initdb into a temporary folder,
 * trust authentication, 127.0.0.1 on a free port, its unix socket in the
 * same folder. Postgres refuses to run as root, so as root it runs as
 * `postgres`. Needs the server binaries ({@link privatePostgresMissing} says
 * when they are missing), not TEST_DATABASE_URL.
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
      // uid/gid of the account the cluster runs as, from the system's own tools.
      const { uid, gid } = await clusterOwner();
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

  /**
   * Starts the cluster and waits until it accepts connections. When it does
   * not start, the error ends with the end of Postgres's own log (the
   * folder, and the log with it, is removed when the test ends).
   */
  async start(): Promise<void> {
    const log = path.join(this.dir, "postgres.log");
    try {
      await asPostgres("pg_ctl", ["-D", this.#data, "-l", log, "-w", "-t", "60", "start"]);
    } catch (err) {
      const tail = await readFile(log, "utf8").then(
        (text) => text.trim().split("\n").slice(-10).join("\n"),
        () => "(no log)",
      );
      throw new Error(`${(err as Error).message}\npostgres.log ends:\n${tail}`);
    }
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

async function clusterOwner(): Promise<{ uid: number; gid: number }> {
  if (!asRoot) return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const uid = Number((await run("id", ["-u", "postgres"])).stdout.trim());
  const gid = Number((await run("id", ["-g", "postgres"])).stdout.trim());
  return { uid, gid };
}

async function asPostgres(program: string, args: string[]): Promise<void> {
  if (PG_BIN === undefined || privatePostgresMissing !== undefined) {
    throw new Error(`cannot run ${program}: ${privatePostgresMissing}`);
  }
  const binary = path.join(PG_BIN, program);
  try {
    await (asRoot
      ? run("runuser", ["-u", "postgres", "--", binary, ...args], { timeout: 90_000 })
      : run(binary, args, { timeout: 90_000 }));
  } catch (err) {
    const e = err as Error & { stderr?: string; stdout?: string };
    throw new Error(`${program} ${args.at(-1)} failed: ${e.message}\n${e.stderr ?? ""}`);
  }
}
