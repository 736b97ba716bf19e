import { randomBytes } from "node:crypto";
import path from "node:path";
import postgres from "postgres";
import { describe, type SuiteOptions } from "vitest";
import { newToken, type ServerProcess, startServer } from "../../support/server-process.ts";
import { runUnless } from "../../support/skip.ts";
import { makeTempDir, removeTempDir } from "../../support/temp-dir.ts";

/**
 * The two databases a compatibility suite runs on: the embedded PGlite
 * always, Postgres when TEST_DATABASE_URL is set (under CI a missing one
 * fails the run instead of skipping the Postgres half).
 */

const testDatabaseUrl = process.env.TEST_DATABASE_URL;
if (process.env.CI && !testDatabaseUrl) {
  throw new Error(
    "CI is set but TEST_DATABASE_URL is not: the compatibility tests must run on Postgres in CI",
  );
}

export type BackendName = "pglite" | "postgres";

interface Backend {
  name: BackendName;
  options: SuiteOptions;
}

const BACKENDS: readonly Backend[] = [
  { name: "pglite", options: {} },
  {
    name: "postgres",
    options: runUnless(testDatabaseUrl ? undefined : "needs TEST_DATABASE_URL (Postgres backend)"),
  },
];

/**
 * `describe(title on <backend>, body)` once per backend, the Postgres one
 * skipped (with its reason reported) when there is no Postgres to run on.
 */
export function describeOnBackends(title: string, body: (backend: BackendName) => void): void {
  for (const backend of BACKENDS) {
    describe(`${title} on ${backend.name}`, backend.options, () => body(backend.name));
  }
}

/**
 * The region Coffer serves: the Scaleway SDK checks its default region
 * against `^[a-z]{2}-[a-z]{3}$`, so Coffer's default ("local") would not do.
 */
export const REGION = "fr-par";

/** A server on a fresh database of its own, and how to remove both. */
export interface CompatServer {
  server: ServerProcess;
  stop(): Promise<void>;
}

/**
 * Starts a server serving {@link REGION} on a fresh database (a new data
 * folder for PGlite, a new database for Postgres), with `env` over those
 * settings. `stop` kills it and drops what it made.
 */
export async function startCompatServer(
  backend: BackendName,
  label: string,
  env: Record<string, string> = {},
): Promise<CompatServer> {
  const dir = await makeTempDir(`compat-${label}`);
  const cleanups: (() => Promise<void>)[] = [() => removeTempDir(dir)];
  let server: ServerProcess | undefined;
  const stop = async () => {
    server?.kill();
    if (server !== undefined) await server.exited;
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  };
  try {
    const database = backend === "postgres" ? await createDatabase(label) : undefined;
    if (database !== undefined) cleanups.push(database.drop);
    server = await startServer({
      env: {
        COFFER_REGIONS: REGION,
        COFFER_BOOTSTRAP_TOKEN: newToken(),
        COFFER_DATA_DIR: path.join(dir, "data"),
        ...(database !== undefined && {
          COFFER_DATABASE_URL: database.url,
          COFFER_MASTER_KEYS: `compat-1:${randomBytes(32).toString("base64")}`,
        }),
        ...env,
      },
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { server, stop };
}

/** A new Postgres database on TEST_DATABASE_URL's server, dropped by `drop`. */
async function createDatabase(label: string): Promise<{ url: string; drop(): Promise<void> }> {
  if (testDatabaseUrl === undefined) throw new Error("TEST_DATABASE_URL is not set");
  const admin = postgres(testDatabaseUrl, { max: 1, onnotice: () => {} });
  const name = `coffer_compat_${label.replaceAll("-", "_")}_${randomBytes(5).toString("hex")}`;
  await admin.unsafe(`create database ${name}`);
  const url = new URL(testDatabaseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}
