/**
 * What opening one test database costs: PGlite made by initdb and the
 * migrations (as every test database was made before the templates) against
 * PGlite loaded from a template (packages/server/src/testing/templates.ts);
 * Postgres created empty and migrated against copied from a template
 * (CREATE DATABASE ... TEMPLATE), on TEST_DATABASE_URL when it is set. Each
 * case opens RUNS databases one after another and prints the time until
 * each was ready (min, median, max, in ms); closing is not counted.
 *
 *   TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test node --conditions=@coffer/source --import tsx bench/test-databases.ts
 */
import { randomBytes } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  type Database,
  loadPgliteTemplate,
  makePostgresTemplate,
  openDatabase,
  pgliteTemplateTar,
  prepareDatabase,
} from "@coffer/server/testing";
import postgres from "postgres";

const RUNS = 5;

async function measure(
  name: string,
  open: () => Promise<{ database: Database; drop?: () => Promise<void> }>,
): Promise<void> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const started = performance.now();
    const { database, drop } = await open();
    times.push(performance.now() - started);
    await database.close();
    await drop?.();
  }
  times.sort((a, b) => a - b);
  const at = (i: number) => Math.round(times[i] ?? Number.NaN);
  console.log(
    `${name.padEnd(44)} min ${at(0)}  median ${at(Math.floor(RUNS / 2))}  max ${at(RUNS - 1)}`,
  );
}

const run = randomBytes(4).toString("hex");
const tar = path.join(tmpdir(), `coffer-bench-template-${run}.tar`);
await writeFile(tar, await pgliteTemplateTar());
try {
  const template = loadPgliteTemplate(tar);
  await measure("pglite: initdb + migrate + seed", async () => {
    const database = await openDatabase({ driver: "pglite", dataDir: undefined });
    await prepareDatabase(database.db);
    return { database };
  });
  await measure("pglite: load the template", async () => ({
    database: await openDatabase({ driver: "pglite", dataDir: undefined, template }),
  }));
} finally {
  await rm(tar, { force: true });
}

const serverUrl = process.env.TEST_DATABASE_URL;
if (serverUrl === undefined) {
  console.log("postgres: skipped (TEST_DATABASE_URL is not set)");
} else {
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  const urlOf = (name: string) => {
    const url = new URL(serverUrl);
    url.pathname = `/${name}`;
    return url.toString();
  };
  let n = 0;
  const created = async (clause: string) => {
    const name = `coffer_test_bench${run}${n++}`;
    await admin.unsafe(`create database ${name}${clause}`);
    const database = await openDatabase({ driver: "postgres", url: urlOf(name), poolSize: 10 });
    return {
      database,
      drop: async () => {
        await admin.unsafe(`drop database ${name} with (force)`);
      },
    };
  };
  const templateName = `coffer_template_bench${run}`;
  try {
    await measure("postgres: create + migrate + seed", async () => {
      const opened = await created("");
      await prepareDatabase(opened.database.db);
      return opened;
    });
    await makePostgresTemplate(serverUrl, templateName);
    await measure("postgres: copy the template", async () => {
      const opened = await created(` template ${templateName}`);
      // The first query opens the pool's first connection, as prepare does above.
      await opened.database.ping();
      return opened;
    });
  } finally {
    await admin.unsafe(`drop database if exists ${templateName} with (force)`);
    await admin.end();
  }
}
