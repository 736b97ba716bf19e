import { randomUUID } from "node:crypto";
import { inArray, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Database, openDatabase } from "../db/client.ts";
import { auditEvents } from "../db/schema.ts";
import {
  backends,
  dropPostgresDatabase,
  OTHER_PROJECT,
  PROJECT,
  postgresBackend,
  testDomain,
  testKeyRing,
} from "../testing/backends.ts";
import {
  addVersion,
  caller,
  expireNow,
  newSecret,
  query,
  textOf,
} from "../testing/domain-helpers.ts";
import { accessVersion, accessVersionByPath } from "./access-version.ts";
import { newCallAudit } from "./audit.ts";
import type { Caller, Grant } from "./caller.ts";
import type { DomainDeps } from "./context.ts";
import { deleteSecret } from "./delete-secret.ts";
import { getVersion } from "./read-versions.ts";

/**
 * Group commit against its oracle: the same calls, made in batches on one
 * database and one at a time on another holding the same secrets, get the
 * same answers, and each batched call has exactly the audit event it would
 * have alone. Calls are drawn from a seeded generator (mulberry32), so a
 * failure replays.
 *
 * Within one batch every call reads the same snapshot, as concurrent calls
 * always did; a single-access version is therefore addressed by its number
 * and consumed without `no_consume` (several calls in one batch may race for
 * it: the first in the queue wins, as it would one at a time), and the
 * single-access secret read with `no_consume` is never consumed.
 */

/** A small seeded generator: the same seed, the same calls. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SECRETS = ["plain", "expired", "once", "peek", "teamB", "other", "deleting"] as const;
type SecretName = (typeof SECRETS)[number];

/** The same secrets in a world (a database): names are logical, ids differ between worlds. */
async function buildWorld(
  domain: DomainDeps,
): Promise<Map<SecretName, { id: string; name: string; path: string; projectId: string }>> {
  const world = new Map<
    SecretName,
    { id: string; name: string; path: string; projectId: string }
  >();
  const make = async (
    key: SecretName,
    overrides: Parameters<typeof newSecret>[1],
    payload: string,
  ) => {
    const { secret } = await newSecret(domain, { name: key, ...overrides }, payload);
    world.set(key, { id: secret.id, name: key, path: secret.path, projectId: secret.projectId });
    return secret.id;
  };
  const plain = await make("plain", { path: "/team/a" }, "plain-1");
  await addVersion(domain, plain, "plain-2");
  await addVersion(domain, plain, "plain-3", { enabled: false });
  const expired = await make("expired", { path: "/team/a" }, "expired-1");
  await addVersion(domain, expired, "expired-2");
  await expireNow(domain.regions.resolve("").db, expired, 2);
  const once = await make(
    "once",
    { path: "/team/a", ephemeralPolicy: { expiresOnceAccessed: true, action: "disable" } },
    "once-1",
  );
  await addVersion(domain, once, "once-2");
  await addVersion(domain, once, "once-3");
  await make(
    "peek",
    { path: "/team/a", ephemeralPolicy: { expiresOnceAccessed: true, action: "delete" } },
    "peek-1",
  );
  await make("teamB", { path: "/team/b" }, "teamB-1");
  await make("other", { path: "/", projectId: OTHER_PROJECT }, "other-1");
  const deleting = await make("deleting", { path: "/team/a" }, "deleting-1");
  await deleteSecret(domain, caller, { region: "", secretId: deleting, etag: "" });
  return world;
}

const PRINCIPALS: Record<string, Grant[] | "admin"> = {
  admin: "admin",
  teamA: [{ projectId: PROJECT, role: "secret_access", pathPrefix: "/team/a" }],
  teamB: [{ projectId: PROJECT, role: "secret_access", pathPrefix: "/team/b" }],
  otherProject: [{ projectId: OTHER_PROJECT, role: "secret_access", pathPrefix: "/" }],
  reader: [{ projectId: PROJECT, role: "read_only", pathPrefix: "/" }],
};

interface Call {
  target: SecretName | "missing";
  byPath: boolean;
  revision: string;
  noConsume: boolean;
  principal: string;
  /** For a missing secret: the id or name asked for. */
  missingId: string;
}

/**
 * One call; a third of them race for the two single-access versions added
 * to "once" this round (`fresh`), mostly as callers allowed to consume them.
 */
function drawCall(random: () => number, fresh: readonly string[]): Call {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  if (random() < 0.33) {
    return {
      target: "once",
      byPath: random() < 0.4,
      principal: random() < 0.8 ? pick(["admin", "teamA"]) : pick(Object.keys(PRINCIPALS)),
      missingId: randomUUID(),
      revision: pick(fresh),
      noConsume: false,
    };
  }
  const target = pick([...SECRETS, "missing"] as const);
  const base = {
    target,
    byPath: random() < 0.4,
    principal: pick(Object.keys(PRINCIPALS)),
    missingId: randomUUID(),
  };
  if (target === "once") return { ...base, revision: pick(["1", "2", "3"]), noConsume: false };
  if (target === "peek") return { ...base, revision: pick(["1", "latest"]), noConsume: true };
  return {
    ...base,
    revision: pick(["latest", "latest_enabled", "1", "2", "3", "4"]),
    noConsume: random() < 0.3,
  };
}

/** A read that changes nothing the drawn calls can see. */
const PACER: Omit<Call, "missingId"> = {
  target: "plain",
  byPath: false,
  revision: "1",
  noConsume: false,
  principal: "admin",
};

function callerFor(principal: string): Caller {
  const grants = PRINCIPALS[principal] ?? [];
  const audit = newCallAudit("coffer.secretmanager.v1.SecretService/AccessSecretVersion", "prop");
  const tokenId = caller.principal?.tokenId ?? "";
  audit.tokenId = tokenId;
  return grants === "admin"
    ? { ...caller, audit }
    : { requestId: "prop", principal: { tokenId, grants }, audit };
}

type World = Awaited<ReturnType<typeof buildWorld>>;

function run(domain: DomainDeps, world: World, call: Call, who: Caller) {
  const secret = call.target === "missing" ? undefined : world.get(call.target);
  const options = { revision: call.revision, noConsume: call.noConsume };
  if (call.byPath) {
    return accessVersionByPath(domain, who, {
      region: "",
      projectId: secret?.projectId ?? PROJECT,
      path: secret?.path ?? "/team/a",
      name: secret?.name ?? `missing-${call.missingId.slice(0, 8)}`,
      ...options,
    });
  }
  return accessVersion(domain, who, {
    region: "",
    secretId: secret?.id ?? call.missingId,
    ...options,
  });
}

/** What a caller observes, with the world's ids and times replaced so that worlds compare. */
function observed(world: World, outcome: PromiseSettledResult<Awaited<ReturnType<typeof run>>>) {
  if (outcome.status === "fulfilled") {
    const r = outcome.value;
    return { ok: textOf(r.data), revision: r.revision, singleAccess: r.singleAccess };
  }
  const err = outcome.reason as { kind?: string; message?: string };
  let message = String(err.message);
  for (const [name, s] of world) message = message.replaceAll(s.id, `<${name}>`);
  message = message.replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, "<time>");
  return { error: err.kind ?? "internal", message };
}

describe.each(backends)("group commit against one call at a time on $name", (backend) => {
  let batchedDb: Database;
  let aloneDb: Database;
  let batched: DomainDeps;
  let alone: DomainDeps;
  let batchedWorld: World;
  let aloneWorld: World;
  const sizes: number[] = [];
  beforeAll(async () => {
    [batchedDb, aloneDb] = await Promise.all([backend.open(), backend.open()]);
    batched = testDomain(
      { main: batchedDb },
      { accessBatching: { max: 64, onBatch: (_region, size) => void sizes.push(size) } },
    );
    alone = testDomain({ main: aloneDb }, { accessBatching: { max: 1 } });
    batchedWorld = await buildWorld(batched);
    aloneWorld = await buildWorld(alone);
  }, 180_000);
  afterAll(async () => {
    await Promise.all([batchedDb?.close(), aloneDb?.close()]);
  });

  it("gives each call of a mixed batch what it gets alone, with exactly its own audit event", async () => {
    const random = mulberry32(16);
    for (let round = 0; round < 12; round++) {
      const fresh: string[] = [];
      for (const n of [1, 2]) {
        for (const [domain, world] of [
          [batched, batchedWorld],
          [alone, aloneWorld],
        ] as const) {
          const v = await addVersion(domain, world.get("once")?.id ?? "", `once-${round}-${n}`);
          if (domain === batched) fresh.push(String(v.revision));
        }
      }
      const calls = Array.from({ length: 8 + Math.floor(random() * 40) }, () =>
        drawCall(random, fresh),
      );
      const batchedCallers = calls.map((c) => callerFor(c.principal));
      sizes.length = 0;
      // On Postgres a call that finds the queue idle is served at once, and
      // runs beside the next batch: a read of "plain" goes first, so that the
      // drawn calls form one batch, as they do on PGlite.
      const pacer =
        backend.name === "postgres"
          ? run(batched, batchedWorld, { ...PACER, missingId: randomUUID() }, callerFor("admin"))
          : undefined;
      // Started in one turn of the event loop: one batch.
      const batchedOutcomes = await Promise.allSettled(
        calls.map((c, i) => run(batched, batchedWorld, c, batchedCallers[i] as Caller)),
      );
      await pacer;
      expect(sizes).toEqual(pacer === undefined ? [calls.length] : [1, calls.length]);
      const aloneOutcomes: PromiseSettledResult<Awaited<ReturnType<typeof run>>>[] = [];
      for (const c of calls) {
        const [outcome] = await Promise.allSettled([
          run(alone, aloneWorld, c, callerFor(c.principal)),
        ]);
        aloneOutcomes.push(outcome as PromiseSettledResult<Awaited<ReturnType<typeof run>>>);
      }
      const got = batchedOutcomes.map((o) => observed(batchedWorld, o));
      const expected = aloneOutcomes.map((o) => observed(aloneWorld, o));
      for (const [i, call] of calls.entries()) {
        expect({ round, call, got: got[i] }).toEqual({ round, call, got: expected[i] });
      }

      // Exactly one OK event per served call, none for a refused one (the
      // chain writes those), each naming the secret and revision served.
      const ids = batchedCallers.map((c) => c.audit?.id ?? "");
      const events = await batchedDb.db
        .select()
        .from(auditEvents)
        .where(inArray(auditEvents.id, ids));
      const byId = new Map(events.map((e) => [e.id, e]));
      expect(events).toHaveLength(byId.size);
      for (const [i, c] of batchedCallers.entries()) {
        const outcome = batchedOutcomes[i];
        const event = byId.get(c.audit?.id ?? "");
        expect(c.audit?.written).toBe(outcome?.status === "fulfilled");
        if (outcome?.status !== "fulfilled") {
          expect(event).toBeUndefined();
          continue;
        }
        const target = batchedWorld.get(calls[i]?.target as SecretName);
        expect(event).toMatchObject({
          outcome: "OK",
          secretId: target?.id,
          secretName: target?.name,
          revision: outcome.value.revision,
          tokenId: c.audit?.tokenId,
        });
      }
    }
    // Both worlds end with the same versions consumed.
    for (const name of ["once", "peek"] as const) {
      for (const revision of name === "once" ? ["1", "2", "3"] : ["1"]) {
        const states = await Promise.all(
          [
            [batched, batchedWorld],
            [alone, aloneWorld],
          ].map(async ([domain, world]) => {
            const v = await getVersion(domain as DomainDeps, caller, {
              region: "",
              secretId: (world as World).get(name)?.id ?? "",
              revision,
            });
            return [v.status, v.consumedAt !== null];
          }),
        );
        expect(states[0]).toEqual(states[1]);
      }
    }
  }, 120_000);
});

describe.runIf(postgresBackend)("batches of two replicas on one Postgres", () => {
  it("lock in one order: batches racing for the same single-access versions in opposite orders never deadlock", async () => {
    const url = (await postgresBackend?.freshUrl?.()) ?? "";
    const replicas = await Promise.all(
      [0, 1].map(() => openDatabase({ driver: "postgres", url, poolSize: 4 })),
    );
    const keyRing = testKeyRing();
    const [a, b] = replicas.map((database) =>
      testDomain({ main: database }, { keyRing, accessBatching: { max: 64 } }),
    ) as [DomainDeps, DomainDeps];
    const deadlocks = async () => {
      const [row] = await query<{ deadlocks: string }>(
        a.regions.resolve("").db,
        sql`select deadlocks::text from pg_stat_database where datname = current_database()`,
      );
      return Number(row?.deadlocks);
    };
    const before = await deadlocks();
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      const { secret } = await newSecret(
        a,
        { ephemeralPolicy: { expiresOnceAccessed: true, action: "disable" } },
        `race ${i}`,
      );
      ids.push(secret.id);
    }
    const served = new Map<string, number>();
    for (let round = 0; round < 10; round++) {
      const revision = String(round + 1);
      if (round > 0) {
        for (const id of ids) await addVersion(a, id, `race ${id} ${revision}`);
      }
      const orders = [ids, [...ids].reverse(), [...ids].sort(), [...ids].reverse()];
      const outcomes = await Promise.allSettled(
        orders.flatMap((order, o) =>
          order.map((secretId) =>
            accessVersion(o % 2 === 0 ? a : b, caller, { region: "", secretId, revision }),
          ),
        ),
      );
      for (const o of outcomes) {
        if (o.status === "fulfilled") {
          const key = `${o.value.secretId}/${o.value.revision}`;
          served.set(key, (served.get(key) ?? 0) + 1);
        } else {
          expect(String(o.reason.message)).toContain("was already accessed");
        }
      }
    }
    expect(served.size).toBe(40 * 10);
    expect([...served.values()].every((n) => n === 1)).toBe(true);
    // Backends report their statistics when they end: close the pools first.
    await replicas[1]?.close();
    const admin = await openDatabase({ driver: "postgres", url, poolSize: 1 });
    await replicas[0]?.close();
    await new Promise((r) => setTimeout(r, 500));
    const [row] = await query<{ deadlocks: string }>(
      admin.db,
      sql`select deadlocks::text from pg_stat_database where datname = current_database()`,
    );
    expect(Number(row?.deadlocks) - before).toBe(0);
    await admin.close();
    await dropPostgresDatabase(url);
  }, 120_000);
});

describe.runIf(postgresBackend)("what an access batch reads on Postgres", () => {
  it("reads only its callers' secrets and versions, whatever plan Postgres caches: no scan of every row per batch", async () => {
    const url = (await postgresBackend?.freshUrl?.()) ?? "";
    const admin = await openDatabase({ driver: "postgres", url, poolSize: 1 });
    // The plan a long-lived connection ends up with: prepared statements
    // switch to a generic plan after five runs, made for the table sizes of
    // that moment (small ones prefer sequential scans) and kept until the
    // next ANALYZE, which autovacuum may never run. Every session of this
    // database gets its generic plan at once.
    await admin.db.execute(
      sql.raw(
        `alter database "${new URL(url).pathname.slice(1)}" set plan_cache_mode = force_generic_plan`,
      ),
    );
    const keyRing = testKeyRing();
    /** Rows read by sequential scans of the versions and of the secrets. */
    const seqRead = async () => {
      const rows = await query<{ relname: string; n: string }>(
        admin.db,
        sql`select relname, coalesce(seq_tup_read, 0)::text as n from pg_stat_user_tables
          where relname in ('secret_versions', 'secrets') order by relname`,
      );
      return Object.fromEntries(rows.map((r) => [r.relname, Number(r.n)]));
    };
    /**
     * Backends report their statistics when they end, a moment after their
     * pool is closed: the figures once two readings 250 ms apart agree.
     */
    const settledSeqRead = async () => {
      let last = await seqRead();
      for (let i = 0; i < 40; i++) {
        await new Promise((r) => setTimeout(r, 250));
        const now = await seqRead();
        if (JSON.stringify(now) === JSON.stringify(last)) return now;
        last = now;
      }
      throw new Error("the statistics of the closed pool never settled");
    };
    // Each phase has its own pool, closed after it (settledSeqRead).
    const setupDb = await openDatabase({ driver: "postgres", url, poolSize: 2 });
    const setup = testDomain({ main: setupDb }, { keyRing });
    const { secret } = await newSecret(setup, {}, "read me");
    for (let i = 0; i < 40; i++) {
      const other = await newSecret(setup, {}, `other ${i}`);
      for (let v = 0; v < 4; v++) await addVersion(setup, other.secret.id, `other ${i} ${v}`);
    }
    await setupDb.close();
    const before = await settledSeqRead();

    const accessDb = await openDatabase({ driver: "postgres", url, poolSize: 2 });
    const domain = testDomain({ main: accessDb }, { keyRing, accessBatching: { max: 64 } });
    for (let round = 0; round < 10; round++) {
      const answers = await Promise.all(
        Array.from({ length: 20 }, () =>
          accessVersion(domain, caller, { region: "", secretId: secret.id, revision: "latest" }),
        ),
      );
      expect(answers.every((a) => textOf(a.data) === "read me")).toBe(true);
    }
    await accessDb.close();
    // 201 versions and 41 secrets: a scan of either per batch would read them all each time.
    expect(await settledSeqRead()).toEqual(before);
    await admin.close();
    await dropPostgresDatabase(url);
  }, 120_000);
});
