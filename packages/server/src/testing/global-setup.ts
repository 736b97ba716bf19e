import { randomBytes } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { PGlite } from "@electric-sql/pglite";
import postgres from "postgres";
import type { TestProject } from "vitest/node";
import { openDatabase } from "../db/client.ts";
import { prepareDatabase } from "./backends.ts";
import type { Templates } from "./templates.ts";

/**
 * vitest globalSetup: makes this run's template databases (templates.ts)
 * before any test file starts, and drops them when the run ends. Each holds
 * what a test database starts with (prepareDatabase).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const run = randomBytes(6).toString("hex");
  const pgliteDataDir = path.join(tmpdir(), `coffer-template-${run}.tar`);
  const testDatabaseUrl = process.env.TEST_DATABASE_URL;
  const postgresName = testDatabaseUrl === undefined ? undefined : `coffer_template_${run}`;
  const dropAll = async () => {
    await rm(pgliteDataDir, { force: true });
    if (testDatabaseUrl !== undefined && postgresName !== undefined) {
      await onServer(testDatabaseUrl, (admin) =>
        admin.unsafe(`drop database if exists ${postgresName} with (force)`),
      );
    }
  };
  try {
    await writeFile(pgliteDataDir, await pgliteTemplateTar());
    if (testDatabaseUrl !== undefined && postgresName !== undefined) {
      await makePostgresTemplate(testDatabaseUrl, postgresName);
    }
  } catch (err) {
    await dropAll();
    throw err;
  }
  project.provide("cofferTemplates", {
    pgliteDataDir,
    ...(postgresName !== undefined && { postgres: postgresName }),
  } satisfies Templates);
  return dropAll;
}

/** An in-memory PGlite made as a test's was (initdb, migrate, seed), as a tar of its data folder. */
export async function pgliteTemplateTar(): Promise<Uint8Array> {
  const database = await openDatabase({ driver: "pglite", dataDir: undefined });
  try {
    await prepareDatabase(database.db);
    const client = (database.db as unknown as { $client: PGlite }).$client;
    return new Uint8Array(await (await client.dumpDataDir("none")).arrayBuffer());
  } finally {
    await database.close();
  }
}

/**
 * Creates the Postgres template. Nothing may stay connected to it: CREATE
 * DATABASE ... TEMPLATE refuses a template with other sessions on it.
 */
export async function makePostgresTemplate(testDatabaseUrl: string, name: string): Promise<void> {
  await onServer(testDatabaseUrl, (admin) => admin.unsafe(`create database ${name}`));
  const url = new URL(testDatabaseUrl);
  url.pathname = `/${name}`;
  const database = await openDatabase({ driver: "postgres", url: url.toString(), poolSize: 1 });
  try {
    await prepareDatabase(database.db);
  } finally {
    await database.close();
  }
}

async function onServer(
  testDatabaseUrl: string,
  use: (admin: postgres.Sql) => Promise<unknown>,
): Promise<void> {
  const admin = postgres(testDatabaseUrl, { max: 1, onnotice: () => {} });
  try {
    await use(admin);
  } finally {
    await admin.end();
  }
}
