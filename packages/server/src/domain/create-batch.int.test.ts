import { randomUUID } from "node:crypto";
import { getTableColumns, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type Db, openDatabase } from "../db/client.ts";
import { secretVersions } from "../db/schema.ts";
import {
  ADMIN_PRINCIPAL,
  backends,
  dropPostgresDatabase,
  PROJECT,
  testDomain,
} from "../testing/backends.ts";
import { countingDatabase } from "../testing/counting-database.ts";
import {
  addVersion,
  caller,
  databasesFor,
  newSecret,
  query,
  textOf,
  utf8,
} from "../testing/domain-helpers.ts";
import { runUnless } from "../testing/skip.ts";
import { accessVersion } from "./access-version.ts";
import { newCallAudit } from "./audit.ts";
import type { Caller } from "./caller.ts";
import type { DomainDeps } from "./context.ts";
import { createVersion } from "./create-version.ts";
import { deleteSecret } from "./delete-secret.ts";
import type { EphemeralPolicyInput } from "./ephemeral-policy.ts";
import { DomainError } from "./errors.ts";
import { etagOf } from "./etag.ts";

// seal is wrapped, not replaced, so that tests can count the versions
// sealed: a create decided twice is sealed twice.
const sealed = vi.hoisted(() => ({ count: 0 }));
vi.mock("../crypto/envelope.ts", async (importOriginal) => {
  const actual = await importOriginal<typeof import("../crypto/envelope.ts")>();
  return {
    ...actual,
    seal: (...args: Parameters<typeof actual.seal>) => {
      sealed.count++;
      return actual.seal(...args);
    },
  };
});

/**
 * Group commit of creates (create-batch.ts): creates started together are
 * written by one transaction, and each caller must get exactly what it gets
 * when its create runs alone, with its own audit event.
 */

const LIMIT = 3;

/** One kind of create, and the secret it is made on. */
interface Case {
  name: string;
  setup(domain: DomainDeps): Promise<string>;
  call(domain: DomainDeps, secretId: string): Promise<unknown>;
}

const reader: Caller = {
  requestId: "reader",
  principal: {
    tokenId: randomUUID(),
    grants: [{ projectId: PROJECT, role: "read_only", pathPrefix: "/" }],
  },
};

function audited(): Caller {
  return {
    ...caller,
    principal: ADMIN_PRINCIPAL,
    audit: newCallAudit("CreateSecretVersion", `req-${randomUUID()}`),
  };
}

const create = (
  domain: DomainDeps,
  secretId: string,
  overrides: Partial<Parameters<typeof createVersion>[2]> = {},
  who: Caller = audited(),
) =>
  createVersion(domain, who, {
    region: "",
    secretId,
    data: utf8("payload"),
    description: "batched",
    enabled: true,
    disablePrevious: false,
    etag: "",
    ...overrides,
  });

/** The etag of the last secret the "current etag" case made (each of its calls follows its setup). */
let currentEtag = "";

const plain = async (domain: DomainDeps) => (await newSecret(domain, {}, "v1")).secret.id;

const CASES: Case[] = [
  { name: "plain", setup: plain, call: (d, id) => create(d, id) },
  {
    name: "disable_previous",
    setup: plain,
    call: (d, id) => create(d, id, { disablePrevious: true }),
  },
  { name: "disabled", setup: plain, call: (d, id) => create(d, id, { enabled: false }) },
  {
    name: "current etag",
    setup: async (d) => {
      const { secret } = await newSecret(d, {}, "v1");
      currentEtag = etagOf(secret);
      return secret.id;
    },
    call: (d, id) => create(d, id, { etag: currentEtag }),
  },
  {
    name: "stale etag",
    setup: plain,
    call: (d, id) => create(d, id, { etag: etagOf({ generation: 1 }) }),
  },
  {
    name: "at the quota",
    setup: async (d) => {
      const id = await plain(d);
      for (let i = 2; i <= LIMIT; i++) await addVersion(d, id, `v${i}`);
      return id;
    },
    call: (d, id) => create(d, id),
  },
  {
    name: "scheduled for deletion",
    setup: async (d) => {
      const id = await plain(d);
      await deleteSecret(d, caller, { region: "", secretId: id, etag: "" });
      return id;
    },
    call: (d, id) => create(d, id),
  },
  { name: "missing", setup: async () => randomUUID(), call: (d, id) => create(d, id) },
  { name: "read-only caller", setup: plain, call: (d, id) => create(d, id, {}, reader) },
  {
    name: "payload not of the secret's type",
    setup: async (d) => (await newSecret(d, { type: "key_value" }, '{"a":"b"}')).secret.id,
    call: (d, id) => create(d, id, { data: utf8("not json") }),
  },
  {
    name: "ephemeral",
    setup: async (d) =>
      (
        await newSecret(
          d,
          { ephemeralPolicy: { ttlMs: 3_600_000, expiresOnceAccessed: true } },
          "v1",
        )
      ).secret.id,
    call: (d, id) => create(d, id),
  },
];

/** A secret's counters, as its row holds them. */
async function secretRow(db: Db, id: string) {
  const [row] = await query<{ generation: number; kept_versions: number; last_revision: number }>(
    db,
    sql`select generation::int, kept_versions, last_revision from secrets where id = ${id}`,
  );
  if (row === undefined) throw new Error(`no secret ${id}`);
  return row;
}

/** What a caller observes, with the secret's id taken out of messages. */
async function observe(call: Promise<unknown>, secretId: string) {
  try {
    const v = (await call) as Record<string, unknown>;
    return {
      ok: {
        revision: v.revision,
        status: v.status,
        latest: v.latest,
        expires: v.expiresAt !== null,
        once: v.expiresOnceAccessed,
      },
    };
  } catch (err) {
    if (!(err instanceof DomainError)) throw err;
    return { error: err.kind, message: err.message.replaceAll(secretId, "<id>") };
  }
}

describe.each(backends)("batched creates on $name", (backend) => {
  const dbs = databasesFor(backend);

  /**
   * What the creates on these secrets left besides their versions, secret
   * by secret: their watch events (but the secret's creation) and counters.
   */
  async function effects(ids: string[]) {
    const db = dbs.db();
    const events = await query<{ secret_id: string; e: string }>(
      db,
      sql`select e.secret_id::text, concat_ws(' ', e.kind, e.project_id = s.project_id,
          e.path = s.path, e.name = s.name, e.revision, e.version_status, e.single_access) as e
        from watch_events e join secrets s on s.id = e.secret_id
        where e.secret_id in ${ids} and e.kind <> 'secret_created' order by e.tx, e.seq`,
    );
    const counters = await query<{ id: string; c: string }>(
      db,
      sql`select id::text, concat_ws(' ', kept_versions, last_revision, generation) as c
        from secrets where id in ${ids}`,
    );
    return ids.map((id) => ({
      events: events.filter((r) => r.secret_id === id).map((r) => r.e),
      counters: counters.find((r) => r.id === id)?.c,
    }));
  }
  let domain: DomainDeps;
  beforeAll(async () => {
    await dbs.open();
    domain = testDomain(
      { "test-region": dbs.database() },
      { limits: { versionsPerSecret: LIMIT } },
    );
  });
  afterAll(() => dbs.close());

  /** A domain whose secrets take many versions, for tests that write many. */
  const roomy = () =>
    testDomain({ "test-region": dbs.database() }, { limits: { versionsPerSecret: 1_000 } });

  it("answers each create of a batch as it answers it alone, with its own audit event", async () => {
    const alone = [];
    const aloneIds: string[] = [];
    for (const c of CASES) {
      const id = await c.setup(domain);
      aloneIds.push(id);
      alone.push(await observe(c.call(domain, id), id));
    }
    const ids: string[] = [];
    for (const c of CASES) ids.push(await c.setup(domain));
    const callers = CASES.map((c, i) => c.call(domain, ids[i] as string));
    const together = await Promise.all(callers.map((p, i) => observe(p, ids[i] as string)));
    expect(together).toEqual(alone);
    // Not vacuous: some succeeded, some were refused.
    expect(together.filter((o) => "ok" in o).length).toBeGreaterThan(3);
    expect(together.filter((o) => "error" in o).length).toBeGreaterThan(3);

    const db = dbs.db();
    const created = await query<{ secret_id: string; revision: number; created_at: string }>(
      db,
      sql`select secret_id::text, revision, created_at::text from secret_versions
        where secret_id in ${ids} and description = 'batched'`,
    );
    // Those written were written by one transaction (now() is the transaction's start).
    expect(new Set(created.map((r) => r.created_at)).size).toBe(1);
    expect(created.length).toBe(together.filter((o) => "ok" in o).length);
    const events = await query<{ secret_id: string; revision: number; n: number }>(
      db,
      sql`select secret_id::text, revision, count(*)::int as n from audit_events
        where method = 'CreateSecretVersion' and secret_id in ${ids} group by 1, 2`,
    );
    expect(events.map((e) => [e.secret_id, e.revision, e.n]).sort()).toEqual(
      created.map((r) => [r.secret_id, r.revision, 1]).sort(),
    );
    // disable_previous disabled the version before, and only it.
    const [disabled] = await query<{ status: string }>(
      db,
      sql`select status from secret_versions where secret_id = ${ids[1]} and revision = 1`,
    );
    expect(disabled?.status).toBe("disabled");
    // The batch writes its versions' watch events and counts them itself
    // (migration 0013): the same events and counters as the creates alone.
    expect(await effects(ids)).toEqual(await effects(aloneIds));
  });

  it("writes the watch events and counters the version triggers write for the same change", async () => {
    // The create statement writes its own events and counts its versions,
    // and turns the triggers off for its transaction (migration 0013); the
    // twin of each secret gets the same version by plain SQL, with the
    // triggers on. A time to live of 0 is no policy's (the API refuses it):
    // set in SQL, it makes a version expired from its start, which the
    // events report by its effective status.
    const shapes: {
      name: string;
      policy?: EphemeralPolicyInput;
      zeroTtl?: boolean;
      input?: Partial<Parameters<typeof createVersion>[2]>;
    }[] = [
      { name: "plain" },
      { name: "disabled", input: { enabled: false } },
      { name: "disable_previous", input: { disablePrevious: true } },
      { name: "single access", policy: { expiresOnceAccessed: true } },
      { name: "time to live", policy: { ttlMs: 3_600_000, expiresOnceAccessed: false } },
      {
        name: "expired from its start",
        policy: { ttlMs: 3_600_000, expiresOnceAccessed: false },
        zeroTtl: true,
      },
      {
        name: "expired from its start, delete",
        policy: { ttlMs: 3_600_000, expiresOnceAccessed: true, action: "delete" },
        zeroTtl: true,
      },
    ];
    // Every column of the version but its secret and its timestamps, from
    // the schema, so that a new column is copied too.
    const copied = sql.raw(
      Object.values(getTableColumns(secretVersions))
        .map((c) => c.name)
        .filter((name) => !["secret_id", "created_at", "updated_at"].includes(name))
        .join(", "),
    );
    const db = dbs.db();
    for (const shape of shapes) {
      const [a, b] = await Promise.all(
        [0, 1].map(
          async () =>
            (
              await newSecret(
                domain,
                shape.policy === undefined ? {} : { ephemeralPolicy: shape.policy },
                "v1",
              )
            ).secret.id,
        ),
      );
      if (shape.zeroTtl) {
        await db.execute(sql`update secrets set ephemeral_ttl_ms = 0 where id in (${a}, ${b})`);
      }
      await create(domain, a as string, shape.input);
      await db.transaction(async (tx) => {
        if (shape.input?.disablePrevious) {
          await tx.execute(sql`update secret_versions set status = 'disabled', updated_at = now()
            where secret_id = ${b} and revision = 1`);
        }
        await tx.execute(sql`insert into secret_versions (secret_id, ${copied})
          select ${b}, ${copied} from secret_versions where secret_id = ${a} and revision = 2`);
        await tx.execute(sql`update secrets set last_revision = 2,
          generation = generation + 1, updated_at = now() where id = ${b}`);
      });
      const [byStatement, byTriggers] = await effects([a as string, b as string]);
      expect(byStatement, shape.name).toEqual(byTriggers);
      expect(byStatement?.events.length, shape.name).toBeGreaterThan(0);
    }
  });

  it("numbers revisions contiguously and keeps counters exact with many writers on many secrets", async () => {
    const wide = roomy();
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push(await plain(wide));
    const results = await Promise.all(
      Array.from({ length: 120 }, (_, i) => create(wide, ids[i % ids.length] as string)),
    );
    for (const id of ids) {
      const revisions = results
        .filter((r) => r.secretId === id)
        .map((r) => r.revision)
        .sort((a, b) => a - b);
      expect(revisions).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
    }
    const rows = await query<{
      id: string;
      kept_versions: number;
      last_revision: number;
      n: number;
    }>(
      dbs.db(),
      sql`select s.id::text, s.kept_versions, s.last_revision,
        (select count(*)::int from secret_versions v where v.secret_id = s.id and v.status <> 'deleted') as n
      from secrets s where s.id in ${ids}`,
    );
    for (const r of rows) expect(r).toMatchObject({ kept_versions: 21, last_revision: 21, n: 21 });
  });

  it("rolls a failed batch back whole, then answers each create alone: none half-written", async () => {
    const wide = roomy();
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push(await plain(wide));
    // One caller's audit event id is taken: the batch's insert fails (unique
    // violation), so its transaction must end without any of its rows.
    const clash = audited();
    const taken = audited();
    await create(wide, ids[0] as string, {}, taken);
    if (clash.audit !== undefined && taken.audit !== undefined) clash.audit.id = taken.audit.id;
    const outcomes = await Promise.allSettled(
      ids.map((id, i) =>
        create(wide, id, { description: `after ${i}` }, i === 3 ? clash : audited()),
      ),
    );
    expect(outcomes.map((o) => o.status)).toEqual([
      "fulfilled",
      "fulfilled",
      "fulfilled",
      "rejected",
      "fulfilled",
      "fulfilled",
    ]);
    const written = await query<{ secret_id: string; n: number; at: number }>(
      dbs.db(),
      sql`select secret_id::text, count(*)::int as n, count(distinct created_at)::int as at
        from secret_versions where secret_id in ${ids} and description like 'after %' group by 1`,
    );
    // Five versions, each written once, by creates run alone (not by the failed batch).
    expect(written.map((w) => w.n)).toEqual([1, 1, 1, 1, 1]);
    expect(written.some((w) => w.secret_id === ids[3])).toBe(false);
    // Nothing was left open: every pool connection still writes.
    const again = await Promise.all(ids.map((id) => create(wide, id)));
    expect(again.every((v) => v.revision >= 2)).toBe(true);
  });

  it(
    "does not hold a batch up behind a secret another transaction has locked",
    runUnless(
      backend.name === "postgres"
        ? undefined
        : "PGlite runs one transaction at a time: no lock to be held behind",
    ),
    async () => {
      const busy = await plain(domain);
      const free = await plain(domain);
      let release = () => {};
      let locked = () => {};
      const lockTaken = new Promise<void>((r) => {
        locked = r;
      });
      const held = dbs.db().transaction(async (tx) => {
        await tx.execute(sql`select 1 from secrets where id = ${busy} for update`);
        await new Promise<void>((r) => {
          release = r;
          locked();
        });
      });
      await lockTaken;
      let busyDone = false;
      const waiting = create(domain, busy).then((v) => {
        busyDone = true;
        return v;
      });
      const through = await create(domain, free);
      expect(through.revision).toBe(2);
      expect(busyDone).toBe(false);
      release();
      await held;
      expect((await waiting).revision).toBe(2);
    },
  );

  it("writes a create on a secret it wrote last in one statement, and decides again under the lock when the secret changed", async () => {
    const counting = await countingDatabase(backend);
    try {
      const d = testDomain(
        { "test-region": counting.database },
        { limits: { versionsPerSecret: 20 } },
      );
      const count = async (call: () => Promise<unknown>) => {
        const before = counting.statements();
        await call();
        return counting.statements() - before;
      };
      const id = await plain(d);
      // Not yet known: its own transaction (BEGIN, the lock, the write, COMMIT).
      expect(await count(() => create(d, id))).toBe(4);
      // Known: one statement, no transaction around it.
      expect(await count(() => create(d, id))).toBe(1);
      expect(await count(() => create(d, id, { disablePrevious: true }))).toBe(1);
      // Changed behind this process's back (as another replica changes it):
      // the statement that checks the known row writes nothing, and the
      // create is decided again on the locked row.
      const elsewhere = () =>
        counting.database.db.execute(
          sql`update secrets set description = 'elsewhere', generation = generation + 1 where id = ${id}`,
        );
      await elsewhere();
      expect(await count(() => create(d, id))).toBe(1 + 4);
      // An etag the known row does not have is checked against the locked row:
      // refused when stale, written when current.
      const stale = etagOf({ generation: (await secretRow(counting.database.db, id)).generation });
      await elsewhere();
      const current = etagOf({
        generation: (await secretRow(counting.database.db, id)).generation,
      });
      await expect(create(d, id, { etag: stale })).rejects.toMatchObject({ kind: "aborted" });
      expect(await count(() => create(d, id, { etag: current }))).toBe(4);
      const versions = await query<{ revision: number; status: string }>(
        counting.database.db,
        sql`select revision, status from secret_versions where secret_id = ${id} order by revision`,
      );
      expect(versions.map((v) => `${v.revision} ${v.status}`)).toEqual([
        "1 enabled",
        "2 enabled",
        "3 disabled",
        "4 enabled",
        "5 enabled",
        "6 enabled",
      ]);
      expect(await secretRow(counting.database.db, id)).toMatchObject({
        kept_versions: 6,
        last_revision: 6,
      });
      // Creates on one secret made at once go one batch after another (a
      // batch holds its secrets until its end), each decided on the row the
      // last one left: one statement each, none sent back to the lock.
      // Only the first is decided as it joins the queue (CreateQueue.push):
      // each of the others on the row the one before it left, when its batch
      // goes out. None is sealed twice.
      const sealsBefore = sealed.count;
      const together = await count(() =>
        Promise.all(Array.from({ length: 10 }, () => create(d, id))),
      );
      expect(together).toBe(10);
      expect(sealed.count - sealsBefore).toBe(10);
      // Creates on several remembered secrets made at once: each decided and
      // sealed as it joins the queue, and written as decided, together.
      const others = await Promise.all(Array.from({ length: 5 }, () => plain(d)));
      for (const other of others) await create(d, other);
      const sealsThen = sealed.count;
      expect(await count(() => Promise.all(others.map((other) => create(d, other))))).toBe(1);
      expect(sealed.count - sealsThen).toBe(5);
      expect(await secretRow(counting.database.db, id)).toMatchObject({ last_revision: 16 });
      // Each version, however written, was sealed for its own secret and
      // revision (the associated data: it decrypts only there), and has its
      // one OK audit event.
      for (let revision = 1; revision <= 16; revision++) {
        if (revision === 3) continue; // disabled by disable_previous
        const { data } = await accessVersion(d, caller, {
          region: "",
          secretId: id,
          revision: String(revision),
        });
        expect(textOf(data)).toBe(revision === 1 ? "v1" : "payload");
      }
      const audited = await query<{ revision: number; n: number }>(
        counting.database.db,
        sql`select revision, count(*)::int as n from audit_events
          where secret_id = ${id} and method = 'CreateSecretVersion' and outcome = 'OK'
          group by revision order by revision`,
      );
      expect(audited.map((a) => `${a.revision}:${a.n}`)).toEqual(
        Array.from({ length: 15 }, (_, i) => `${i + 2}:1`),
      );
    } finally {
      await counting.database.close();
    }
  });

  it(
    "numbers revisions contiguously and keeps the version quota exact across replicas writing one secret",
    runUnless(
      backend.freshUrl === undefined
        ? "two replicas need two connections to one Postgres"
        : undefined,
    ),
    async () => {
      const url = await (backend.freshUrl as () => Promise<string>)();
      const replicas = [
        await openDatabase({ driver: "postgres", url, poolSize: 4 }),
        await openDatabase({ driver: "postgres", url, poolSize: 4 }),
      ];
      try {
        const limit = 40;
        const domains = replicas.map((r) =>
          testDomain({ "test-region": r }, { limits: { versionsPerSecret: limit } }),
        );
        const [a, b] = domains as [DomainDeps, DomainDeps];
        const id = await plain(a);
        // Each replica knows the secret's row as it last wrote it.
        await create(a, id);
        await create(b, id);
        const outcomes = await Promise.allSettled(
          Array.from({ length: 60 }, (_, i) => create(i % 2 === 0 ? a : b, id)),
        );
        const created = outcomes.flatMap((o) =>
          o.status === "fulfilled" ? [o.value.revision] : [],
        );
        const refused = outcomes.flatMap((o) => (o.status === "rejected" ? [o.reason] : []));
        expect(created.sort((x, y) => x - y)).toEqual(
          Array.from({ length: limit - 3 }, (_, i) => i + 4),
        );
        expect(refused.length).toBe(60 - (limit - 3));
        for (const err of refused) expect(err).toMatchObject({ kind: "resource_exhausted" });
        expect(await secretRow(replicas[0]?.db as Db, id)).toMatchObject({
          kept_versions: limit,
          last_revision: limit,
        });
      } finally {
        await Promise.all(replicas.map((r) => r.close()));
        await dropPostgresDatabase(url);
      }
    },
  );
});
