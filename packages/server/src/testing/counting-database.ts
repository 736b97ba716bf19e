import { PGlite } from "@electric-sql/pglite";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import type { Database, Db } from "../db/client.ts";
import { migrate } from "../db/migrate.ts";
import * as schema from "../db/schema.ts";
import { type Backend, dropPostgresDatabase, seedProjects } from "./backends.ts";

/**
 * A database whose every statement is counted: drizzle's logger sees each
 * query (prepared ones included), and a transaction adds its BEGIN and
 * COMMIT, which the drivers send as statements of their own.
 */
export async function countingDatabase(backend: Backend): Promise<{
  database: Database;
  statements: () => number;
  /** Postgres only: the database's URL, for a connection outside the pool. */
  url?: string;
}> {
  let count = 0;
  let url: string | undefined;
  const logger = { logQuery: () => void count++ };
  let database: Database;
  if (backend.name === "postgres") {
    if (backend.freshUrl === undefined) throw new Error("no Postgres to create a database on");
    const fresh = await backend.freshUrl();
    url = fresh;
    const client = postgres(fresh, { max: 10, onnotice: () => {} });
    const db = drizzlePostgres({ client, schema, logger }) as unknown as Db;
    database = quiet(db, "postgres", async () => {
      await client.end({ timeout: 5 });
      await dropPostgresDatabase(fresh);
    });
  } else {
    const client = await PGlite.create("memory://");
    const db = drizzlePglite({ client, schema, logger }) as unknown as Db;
    database = quiet(db, "pglite", () => client.close());
  }
  await migrate(database.db);
  await seedProjects(database.db);
  const transaction = database.db.transaction.bind(database.db);
  database.db.transaction = ((...args: Parameters<typeof transaction>) => {
    count += 2;
    return transaction(...args);
  }) as typeof transaction;
  return { database, statements: () => count, ...(url !== undefined && { url }) };
}

/** A Database with no health check and no notifications: the tests count statements only. */
function quiet(db: Db, driver: Database["driver"], close: () => Promise<void>): Database {
  return { db, driver, ping: async () => true, listen: async () => async () => {}, close };
}
