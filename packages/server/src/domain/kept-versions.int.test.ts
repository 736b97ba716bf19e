import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../db/client.ts";
import { pgErrorCode } from "../db/errors.ts";
import { migrate } from "../db/migrate.ts";
import { backends, testDomain } from "../testing/backends.ts";
import {
  addVersion,
  caller,
  databasesFor,
  expireNow,
  newSecret,
  query,
} from "../testing/domain-helpers.ts";
import { accessVersion } from "./access-version.ts";
import type { DomainDeps } from "./context.ts";
import { DomainError } from "./errors.ts";
import { sweepRegion } from "./sweeper.ts";
import { deleteVersion, destroyVersion, disableVersion } from "./version-state.ts";

/**
 * secrets.kept_versions, the count the version quota reads instead of
 * counting versions (migration 0010): it must equal the count of versions
 * whose payload is kept after any mix of concurrent changes, and the quota it
 * enforces must stay exact.
 */

/** The counter, the real count, and the revisions given out, of one secret. */
async function counts(db: Db, secretId: string) {
  const [row] = await query<{
    counter: number;
    kept: number;
    versions: number;
    min: number | null;
    max: number | null;
    last: number;
  }>(
    db,
    sql`select s.kept_versions as counter, s.last_revision as last,
      (select count(*)::int from secret_versions v where v.secret_id = s.id and v.status <> 'deleted') as kept,
      (select count(*)::int from secret_versions v where v.secret_id = s.id) as versions,
      (select min(revision) from secret_versions v where v.secret_id = s.id) as min,
      (select max(revision) from secret_versions v where v.secret_id = s.id) as max
    from secrets s where s.id = ${secretId}`,
  );
  if (row === undefined) throw new Error(`secret ${secretId} not found`);
  return row;
}

/** Runs `call`; a refusal a caller could get (a DomainError) is an answer, anything else fails the test. */
async function answered<T>(call: Promise<T>): Promise<T | DomainError> {
  try {
    return await call;
  } catch (err) {
    if (err instanceof DomainError) return err;
    throw err;
  }
}

describe.each(backends)("kept-version counter on $name", (backend) => {
  const dbs = databasesFor(backend);
  let domain: DomainDeps;
  const LIMIT = 5;
  let limited: DomainDeps;
  beforeAll(async () => {
    domain = await dbs.open({ deletionWindowMs: 0 });
    limited = testDomain(
      { "test-region": dbs.database() },
      { deletionWindowMs: 0, limits: { versionsPerSecret: LIMIT } },
    );
  });
  afterAll(() => dbs.close());

  const ref = (secretId: string, revision: number) => ({
    region: "",
    secretId,
    revision: String(revision),
    etag: "",
  });

  it("equals the count of kept versions after concurrent creates, destroys, deletions, consumptions, expiries and sweeps", async () => {
    // Single access with the `delete` action: each consumption destroys a payload.
    const { secret } = await newSecret(domain, {
      ephemeralPolicy: { expiresOnceAccessed: true, action: "delete" },
    });
    const db = dbs.db();
    const created: number[] = [1];
    const pick = (i: number) => 1 + ((i * 7) % Math.max(1, created.length + 3));
    const sweep = async () => {
      try {
        await sweepRegion(db, 0);
      } catch (err) {
        // A sweep that meets a transaction holding the secret (waiting for a
        // version the sweep picked) loses the deadlock; the next tick retries.
        if (pgErrorCode(err) !== "40P01") throw err;
      }
    };
    const operations = Array.from({ length: 160 }, async (_, i) => {
      switch (i % 8) {
        case 0:
        case 1:
        case 2: {
          const v = await answered(addVersion(domain, secret.id, `v${i}`));
          if (!(v instanceof DomainError)) created.push(v.revision);
          return;
        }
        case 3:
          await answered(destroyVersion(domain, caller, ref(secret.id, pick(i))));
          return;
        case 4:
          await answered(deleteVersion(domain, caller, ref(secret.id, pick(i))));
          return;
        case 5:
          await answered(accessVersion(domain, caller, ref(secret.id, pick(i))));
          return;
        case 6:
          await expireNow(db, secret.id, pick(i));
          await answered(disableVersion(domain, caller, ref(secret.id, pick(i + 1))));
          return;
        default:
          await sweep();
      }
    });
    await Promise.all(operations);
    await sweep();
    const after = await counts(db, secret.id);
    expect(after.counter).toBe(after.kept);
    // Something of each kind happened: the mix is not vacuous.
    expect(after.kept).toBeGreaterThan(0);
    expect(after.kept).toBeLessThan(after.versions);
    // Revisions are contiguous: 1..last, each created once.
    expect(after).toMatchObject({ min: 1, max: after.last, versions: after.last });
    expect(created.sort((a, b) => a - b)).toEqual(
      Array.from({ length: after.last }, (_, i) => i + 1),
    );
  });

  it("lets exactly one of 12 concurrent creates through at one below the limit", async () => {
    const { secret } = await newSecret(limited, {}, "v1");
    for (let i = 2; i < LIMIT; i++) await addVersion(limited, secret.id, `v${i}`);
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => answered(addVersion(limited, secret.id, `c${i}`))),
    );
    const added = results.filter((r) => !(r instanceof DomainError));
    expect(added).toHaveLength(1);
    for (const r of results) {
      if (r instanceof DomainError) expect(r.kind).toBe("resource_exhausted");
    }
    expect(await counts(dbs.db(), secret.id)).toMatchObject({
      counter: LIMIT,
      kept: LIMIT,
      last: LIMIT,
    });
  });

  it("never goes over the limit when a destroy frees a slot among concurrent creates", async () => {
    const { secret } = await newSecret(limited, {}, "v1");
    for (let i = 2; i <= LIMIT; i++) await addVersion(limited, secret.id, `v${i}`);
    const [destroyed, ...creates] = await Promise.all([
      destroyVersion(limited, caller, ref(secret.id, 1)),
      ...Array.from({ length: 10 }, (_, i) => answered(addVersion(limited, secret.id, `c${i}`))),
    ]);
    expect(destroyed?.status).toBe("deleted");
    const added = creates.filter((r) => !(r instanceof DomainError)).length;
    // The destroy frees one slot: a create ordered after it takes it, one before is refused.
    expect(added).toBeLessThanOrEqual(1);
    const after = await counts(dbs.db(), secret.id);
    expect(after).toMatchObject({ counter: after.kept, kept: LIMIT - 1 + added });
  });

  it("is backfilled by the migration from the versions already stored", async () => {
    const db = dbs.db();
    const project = randomUUID();
    const { secret: a } = await newSecret(domain, { projectId: project }, "a1");
    for (let i = 2; i <= 4; i++) await addVersion(domain, a.id, `a${i}`);
    await destroyVersion(domain, caller, ref(a.id, 2));
    await deleteVersion(domain, caller, ref(a.id, 3));
    const { secret: b } = await newSecret(domain, { projectId: project }, null);
    const { secret: c } = await newSecret(domain, { projectId: project }, "c1");
    await destroyVersion(domain, caller, ref(c.id, 1));
    // Back to the schema before 0010, keeping the rows, then migrate again.
    for (const statement of [
      sql`drop trigger kept_versions_insert on secret_versions`,
      sql`drop trigger kept_versions_status on secret_versions`,
      sql`drop trigger kept_versions_delete on secret_versions`,
      sql`drop function coffer_count_kept_versions()`,
      sql`alter table secrets drop column kept_versions`,
      sql`delete from coffer_migrations where tag = '0010_kept_versions_counter'`,
    ]) {
      await db.execute(statement);
    }
    expect(await migrate(db)).toEqual(["0010_kept_versions_counter"]);
    const rows = await query<{ id: string; kept_versions: number }>(
      db,
      sql`select id, kept_versions from secrets where project_id = ${project}`,
    );
    expect(Object.fromEntries(rows.map((r) => [r.id, r.kept_versions]))).toEqual({
      [a.id]: 3,
      [b.id]: 0,
      [c.id]: 0,
    });
    // And the triggers are back: a destroy is counted.
    await destroyVersion(domain, caller, ref(a.id, 1));
    expect(await counts(db, a.id)).toMatchObject({ counter: 2, kept: 2 });
  });
});
