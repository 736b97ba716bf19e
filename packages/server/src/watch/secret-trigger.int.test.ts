import { getTableColumns, type SQL, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { secrets } from "../db/schema.ts";
import type { DomainDeps } from "../domain/context.ts";
import { backends } from "../testing/backends.ts";
import { databasesFor, newSecret, query } from "../testing/domain-helpers.ts";

/**
 * The watch_secret_update trigger's WHEN (migration 0013) must fire
 * coffer_watch_secret for every update the function writes an event for,
 * and may skip only those it writes nothing for: each column the function
 * compares is changed alone here, and so is each bookkeeping column.
 */

/** Changes to one column of a secret, by its name, and the event each must write ("" for none). */
const CHANGES: [string, SQL, string][] = [
  ["path", sql`path = '/moved'`, "secret_updated /moved (from /)"],
  ["name", sql`name = name || '-renamed'`, "secret_updated / (from /)"],
  ["description", sql`description = 'described'`, "secret_updated /"],
  ["tags", sql`tags = '{a}'`, "secret_updated /"],
  ["protected", sql`protected = true`, "secret_updated /"],
  ["ephemeral_ttl_ms", sql`ephemeral_ttl_ms = 60000`, "secret_updated /"],
  ["ephemeral_once", sql`ephemeral_once = true`, "secret_updated /"],
  ["ephemeral_action", sql`ephemeral_action = 'disable'`, "secret_updated /"],
  ["deletion_requested_at", sql`deletion_requested_at = now()`, "secret_deleted /"],
  ["generation", sql`generation = generation + 1`, ""],
  ["last_revision", sql`last_revision = last_revision + 1`, ""],
  ["kept_versions", sql`kept_versions = kept_versions + 1`, ""],
  ["updated_at", sql`updated_at = now()`, ""],
];

/** The columns no statement changes once the secret exists. */
const FIXED = ["id", "project_id", "region", "type", "created_at"];

it("changes every column of a secret that can change (a new column must be added here)", () => {
  const columns = Object.values(getTableColumns(secrets)).map((c) => c.name);
  expect([...CHANGES.map(([column]) => column), ...FIXED].sort()).toEqual(columns.sort());
});

describe.each(backends)("watch events of secret updates on $name", (backend) => {
  const dbs = databasesFor(backend);
  let domain: DomainDeps;
  beforeAll(async () => {
    domain = await dbs.open();
  });
  afterAll(() => dbs.close());

  async function eventsOf(id: string, change: SQL): Promise<string> {
    const db = dbs.db();
    await db.execute(sql`update secrets set ${change} where id = ${id}`);
    const rows = await query<{ e: string }>(
      db,
      sql`select concat_ws(' ', kind, path, '(from ' || previous_path || ')') as e
        from watch_events where secret_id = ${id}
          and kind not in ('secret_created', 'version_created') order by tx, seq`,
    );
    return rows.map((r) => r.e).join(", ");
  }

  it.each(CHANGES)("%s", async (_column, change, event) => {
    const { secret } = await newSecret(domain, {});
    expect(await eventsOf(secret.id, change)).toBe(event);
  });

  it("restored: a deletion withdrawn", async () => {
    const { secret } = await newSecret(domain, {});
    await eventsOf(secret.id, sql`deletion_requested_at = now()`);
    expect(await eventsOf(secret.id, sql`deletion_requested_at = null`)).toBe(
      "secret_deleted /, secret_restored /",
    );
  });
});
