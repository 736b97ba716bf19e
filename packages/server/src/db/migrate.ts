import { readFile } from "node:fs/promises";
import { sql } from "drizzle-orm";
import type { Db } from "./client.ts";
import { rowsOf } from "./raw-sql.ts";

const migrationsDir = new URL("./migrations/", import.meta.url);

/** An arbitrary constant: the advisory lock that serialises migrations across replicas. */
const MIGRATION_LOCK = 0x636f66666572; // "coffer"

interface Journal {
  entries: { idx: number; tag: string }[];
}

/**
 * Applies the committed drizzle-kit migrations that this database has not
 * seen, in one transaction holding an advisory lock: replicas starting
 * together wait for the first one, then find nothing left to do. A failed
 * migration rolls back whole.
 */
export async function migrate(db: Db): Promise<string[]> {
  const journal = JSON.parse(
    await readFile(new URL("meta/_journal.json", migrationsDir), "utf8"),
  ) as Journal;
  const files = await Promise.all(
    journal.entries.map(async (e) => ({
      tag: e.tag,
      statements: (await readFile(new URL(`${e.tag}.sql`, migrationsDir), "utf8"))
        .split("--> statement-breakpoint")
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
    })),
  );
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${MIGRATION_LOCK})`);
    await tx.execute(
      sql`create table if not exists coffer_migrations (tag text primary key, applied_at timestamptz not null default now())`,
    );
    const applied = new Set(
      rowsOf<{ tag: string }>(await tx.execute(sql`select tag from coffer_migrations`)).map(
        (r) => r.tag,
      ),
    );
    const done: string[] = [];
    for (const file of files) {
      if (applied.has(file.tag)) continue;
      for (const statement of file.statements) await tx.execute(sql.raw(statement));
      await tx.execute(sql`insert into coffer_migrations (tag) values (${file.tag})`);
      done.push(file.tag);
    }
    return done;
  });
}
