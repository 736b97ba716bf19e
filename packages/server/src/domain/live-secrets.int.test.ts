import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate } from "../db/migrate.ts";
import { backends, testDomain } from "../testing/backends.ts";
import { caller, databasesFor, newSecret, query } from "../testing/domain-helpers.ts";
import type { DomainDeps } from "./context.ts";
import { deleteSecret, restoreSecret } from "./delete-secret.ts";
import { DomainError } from "./errors.ts";
import { sweepRegion } from "./sweeper.ts";

/**
 * project_secret_counts, the count the secret quota reads instead of
 * counting a project's secrets (migration 0011): it must equal the count of
 * live secrets after any mix of concurrent changes, and the quota it
 * enforces must stay exact.
 */

describe.each(backends)("live-secret counts on $name", (backend) => {
  const dbs = databasesFor(backend);
  let domain: DomainDeps;
  const LIMIT = 4;
  let limited: DomainDeps;
  beforeAll(async () => {
    domain = await dbs.open();
    limited = testDomain(
      { "test-region": dbs.database() },
      { limits: { secretsPerProject: LIMIT } },
    );
  });
  afterAll(() => dbs.close());

  /** The kept count and the real one, of a project in the test region. */
  const counts = async (projectId: string) => {
    const [row] = await query<{ counter: number | null; live: number }>(
      dbs.db(),
      sql`select
        (select live from project_secret_counts where project_id = ${projectId} and region = 'test-region') as counter,
        (select count(*)::int from secrets where project_id = ${projectId} and region = 'test-region' and deletion_requested_at is null) as live`,
    );
    return { counter: row?.counter ?? 0, live: row?.live ?? 0 };
  };

  const answered = async (call: Promise<unknown>) => {
    try {
      return await call;
    } catch (err) {
      if (err instanceof DomainError) return err;
      throw err;
    }
  };

  it("equals the count of live secrets after concurrent creates, deletions, restores and destructions", async () => {
    const projectId = randomUUID();
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await newSecret(domain, { projectId }, null)).secret.id);
    const ref = (i: number) => ({ region: "", secretId: ids[i % ids.length] as string });
    await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        switch (i % 4) {
          case 0:
            await answered(newSecret(domain, { projectId }, null));
            return;
          case 1:
            await answered(deleteSecret(domain, caller, { ...ref(i), etag: "" }));
            return;
          case 2:
            await answered(restoreSecret(domain, caller, ref(i + 1)));
            return;
          default:
            // With a zero window the sweeper destroys what is scheduled (restores within the domain's own window).
            await sweepRegion(dbs.db(), 0);
        }
      }),
    );
    const after = await counts(projectId);
    expect(after.counter).toBe(after.live);
    expect(after.live).toBeGreaterThan(0);
  });

  it("lets exactly one of 10 concurrent creates through at one below the limit", async () => {
    const projectId = randomUUID();
    for (let i = 1; i < LIMIT; i++) await newSecret(limited, { projectId }, null);
    const results = await Promise.all(
      Array.from({ length: 10 }, () => answered(newSecret(limited, { projectId }, null))),
    );
    const refused = results.filter((r) => r instanceof DomainError) as DomainError[];
    expect(results.length - refused.length).toBe(1);
    for (const r of refused) expect(r.kind).toBe("resource_exhausted");
    expect(await counts(projectId)).toEqual({ counter: LIMIT, live: LIMIT });
  });

  it("is backfilled by the migration from the secrets already stored", async () => {
    const db = dbs.db();
    const [a, b] = [randomUUID(), randomUUID()];
    for (let i = 0; i < 3; i++) await newSecret(domain, { projectId: a }, null);
    const { secret } = await newSecret(domain, { projectId: b }, null);
    await deleteSecret(domain, caller, { region: "", secretId: secret.id, etag: "" });
    for (const statement of [
      sql`drop trigger live_secrets_insert on secrets`,
      sql`drop trigger live_secrets_delete on secrets`,
      sql`drop trigger live_secrets_update on secrets`,
      sql`drop function coffer_count_live_secrets()`,
      sql`drop table project_secret_counts`,
      sql`delete from coffer_migrations where tag = '0011_live_secret_counts'`,
    ]) {
      await db.execute(statement);
    }
    expect(await migrate(db)).toEqual(["0011_live_secret_counts"]);
    expect(await counts(a)).toEqual({ counter: 3, live: 3 });
    expect(await counts(b)).toEqual({ counter: 0, live: 0 });
    // And the trigger is back: a restore is counted.
    await restoreSecret(domain, caller, { region: "", secretId: secret.id });
    expect(await counts(b)).toEqual({ counter: 1, live: 1 });
  });
});
