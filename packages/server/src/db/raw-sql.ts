import type { PGlite } from "@electric-sql/pglite";
import type { Logger, Query, SQL } from "drizzle-orm";
import { PgDialect, type PgSession, type SelectedFieldsOrdered } from "drizzle-orm/pg-core";
import type { Sql } from "#postgres";
import type { Db, Executor } from "./client.ts";
import { type NamedStatement, pgliteStatement } from "./pglite-statements.ts";

/**
 * SQL run outside drizzle's query builders: statements rendered to text once
 * and run by name, and the rows of `execute` on either driver.
 */

const dialect = new PgDialect();

/** Renders a statement with placeholders to SQL text, once. */
export function render(query: SQL): Query {
  return dialect.sqlToQuery(query);
}

/**
 * drizzle's driver session of a database or transaction: `_.session` is its
 * public handle, the path its query builders' `.prepare(name)` takes.
 */
export function sessionOf(ex: Executor): PgSession {
  return (ex as unknown as { _: { session: PgSession } })._.session;
}

/**
 * Runs SQL rendered once at module load inside any executor (a transaction
 * included): drizzle's `execute` would render the template on every call.
 * Named, so postgres-js keeps a server-side prepared statement per
 * connection and Postgres parses and plans the text once.
 */
export function executeRendered(
  ex: Executor,
  query: Query,
  name: string,
  values: Record<string, unknown>,
  /** Columns of the select list, in order: drizzle then maps rows as its query builder would. */
  fields?: SelectedFieldsOrdered,
): Promise<unknown> {
  return sessionOf(ex).prepareQuery(query, fields, name, false).execute(values);
}

/**
 * A statement rendered once, prepared by name on a database (not inside a
 * transaction): postgres-js keeps it per pool connection; on PGlite it is
 * parsed once by pgliteStatement, where drizzle's session would send it
 * unnamed, parsed and planned on every call.
 */
export function prepareStatement(db: Db, query: Query, name: string): NamedStatement {
  if (postgresClientOf(db) !== undefined) {
    return sessionOf(db).prepareQuery(query, undefined, name, false);
  }
  const { logger } = sessionOf(db) as unknown as { logger: Logger };
  return pgliteStatement((db as unknown as { $client: PGlite }).$client, query, name, logger);
}

/** The postgres-js client of a database on Postgres; undefined on PGlite. */
export function postgresClientOf(db: Db): Sql | undefined {
  const client = (db as unknown as { $client?: Partial<Sql> }).$client;
  return typeof client?.reserve === "function" ? (client as Sql) : undefined;
}

/**
 * The rows of `execute`, mapped, then removed from the driver's array. On
 * Postgres something keeps a finished query, and with it its result, alive
 * past the young generation (not found; see patches/postgres+3.4.9.patch):
 * a result emptied once read lets its rows die young. For the statements
 * every access runs: at 3,000 accesses/s a server promoted 0.22 MB per
 * scavenge without this and 0.04 with it (bench/probes/scavenges.ts, three
 * runs each; bench/RESULTS.md, access reading of 2026-12-06, sixth session).
 */
export function takeRows<T, U>(result: unknown, map: (row: T) => U): U[] {
  const rows = rowsOf<T>(result);
  const mapped = rows.map((row) => map(row));
  rows.length = 0;
  return mapped;
}

/** `execute` returns an array on postgres-js and `{ rows }` on PGlite. */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  return (result as { rows: T[] }).rows;
}
