import { sql } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { backends } from "../testing/backends.ts";
import { databasesFor, query } from "../testing/domain-helpers.ts";
import type { DomainDeps } from "./context.ts";
import {
  DEFAULT_AUDIT_RETENTION_MS,
  pruneAuditEvents,
  type SweepCounts,
  startSweeper,
  sweepRegion,
} from "./sweeper.ts";

const DAY = 86_400_000;

/** Issue 11 item 6: audit events older than COFFER_AUDIT_RETENTION are swept, in bounded batches. */
describe.each(backends)("audit retention on $name", (backend) => {
  const dbs = databasesFor(backend);
  let domain: DomainDeps;
  beforeAll(async () => {
    domain = await dbs.open();
  });
  afterAll(() => dbs.close());
  beforeEach(async () => {
    await dbs.db().execute(sql`delete from audit_events`);
  });

  /** `n` events `ageDays` old (each a second apart), tagged by request id. */
  const insert = (n: number, ageDays: number, tag: string) =>
    dbs.db().execute(sql`insert into audit_events (id, time, method, outcome, request_id)
      select gen_random_uuid(), now() - ${ageDays} * interval '1 day' - g * interval '1 second',
             'coffer.test/Call', 'OK', ${tag} || g
      from generate_series(1, ${n}) g`);
  const counts = async () =>
    Object.fromEntries(
      (
        await query<{ tag: string; n: number }>(
          dbs.db(),
          sql`select split_part(request_id, '-', 1) as tag, count(*)::int as n from audit_events group by 1`,
        )
      ).map((r) => [r.tag, r.n]),
    );

  it("deletes what is older than the retention, batch by batch, and keeps the rest", async () => {
    await insert(1_250, 400, "old-");
    await insert(30, 300, "kept-");
    await insert(20, 0, "new-");
    const batches: number[] = [];
    for (let n = -1; n !== 0; ) {
      n = await pruneAuditEvents(dbs.db(), 365 * DAY, 500);
      batches.push(n);
    }
    // No statement touches more than its batch.
    expect(batches).toEqual([500, 500, 250, 0]);
    expect(await counts()).toEqual({ kept: 30, new: 20 });
  });

  it("is part of every sweep, with a year's default", async () => {
    await insert(700, 367, "old-");
    await insert(10, 364, "kept-");
    const swept = await sweepRegion(dbs.db(), 7 * DAY);
    expect(DEFAULT_AUDIT_RETENTION_MS).toBeGreaterThanOrEqual(365 * DAY);
    expect(swept.auditEventsPruned).toBe(700);
    expect(await counts()).toEqual({ kept: 10 });
  });

  it("follows the domain's retention (COFFER_AUDIT_RETENTION) in the background sweeper", async () => {
    await insert(40, 10, "old-");
    await insert(5, 1, "kept-");
    const swept: SweepCounts[] = [];
    const stop = startSweeper(
      { ...domain, auditRetentionMs: 5 * DAY },
      3_600_000,
      (_region, err) => {
        throw err;
      },
      (_region, c) => swept.push(c),
    );
    await stop();
    expect(swept.map((c) => c.auditEventsPruned)).toEqual([40]);
    expect(await counts()).toEqual({ kept: 5 });
  });
});
