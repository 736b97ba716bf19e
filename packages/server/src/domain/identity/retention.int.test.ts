import { randomUUID } from "node:crypto";
import { inArray } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateToken } from "../../crypto/tokens.ts";
import { tokens } from "../../db/schema.ts";
import { backends } from "../../testing/backends.ts";
import { databasesFor } from "../../testing/domain-helpers.ts";
import { EXCHANGED_TOKEN_RETENTION_MS, sweepRegion } from "../sweeper.ts";

const HOUR = 3_600_000;

/**
 * Exchanged tokens pile up (one row per exchange): the sweeper deletes those
 * expired more than EXCHANGED_TOKEN_RETENTION_MS ago, unless they created
 * tokens (their children point at them). Other tokens are never deleted.
 */
describe.each(backends)("exchanged token retention on $name", (backend) => {
  const dbs = databasesFor(backend);
  beforeAll(() => dbs.open());
  afterAll(() => dbs.close());

  const insert = async (o: { expiredAgoMs: number; exchanged: boolean; createdBy?: string }) => {
    const t = generateToken();
    const id = randomUUID();
    await dbs
      .db()
      .insert(tokens)
      .values({
        id,
        name: "t",
        prefix: t.prefix,
        hash: t.hash,
        grants: [],
        expiresAt: new Date(Date.now() - o.expiredAgoMs),
        createdBy: o.createdBy ?? null,
        ...(o.exchanged && { issuer: "https://issuer.example", subject: "s" }),
      });
    return id;
  };

  it("deletes exchanged tokens a day after they expired, and nothing else", async () => {
    const old = await insert({ expiredAgoMs: 25 * HOUR, exchanged: true });
    const recent = await insert({ expiredAgoMs: 23 * HOUR, exchanged: true });
    const live = await insert({ expiredAgoMs: -HOUR, exchanged: true });
    const staticOld = await insert({ expiredAgoMs: 25 * HOUR, exchanged: false });
    const parent = await insert({ expiredAgoMs: 25 * HOUR, exchanged: true });
    const child = await insert({ expiredAgoMs: 26 * HOUR, exchanged: false, createdBy: parent });

    const counts = await sweepRegion(dbs.db(), 7 * 24 * HOUR);
    expect(counts.exchangedTokensPruned).toBe(1);
    expect(EXCHANGED_TOKEN_RETENTION_MS).toBe(24 * HOUR);
    const left = await dbs
      .db()
      .select({ id: tokens.id })
      .from(tokens)
      .where(inArray(tokens.id, [old, recent, live, staticOld, parent, child]));
    expect(new Set(left.map((r) => r.id))).toEqual(
      new Set([recent, live, staticOld, parent, child]),
    );
  });
});
