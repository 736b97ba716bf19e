import { eq } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKey } from "../crypto/key-ring.ts";
import type { Database } from "../db/client.ts";
import { pgErrorCode } from "../db/errors.ts";
import { auditEvents } from "../db/schema.ts";
import { backends, PROJECT, testDomain } from "../testing/backends.ts";
import { countingDatabase } from "../testing/counting-database.ts";
import {
  addVersion,
  caller,
  expectDomainError,
  newSecret,
  textOf,
  unique,
  utf8,
} from "../testing/domain-helpers.ts";
import { accessVersion, accessVersionByPath } from "./access-version.ts";
import { newCallAudit } from "./audit.ts";
import type { Caller } from "./caller.ts";
import type { DomainDeps } from "./context.ts";
import { createVersion } from "./create-version.ts";
import { getVersion } from "./read-versions.ts";

/** A caller with an audit record, as the call chain makes one. */
function audited(): Caller {
  const audit = newCallAudit("coffer.secretmanager.v1.SecretService/AccessSecretVersion", "req");
  audit.tokenId = caller.principal?.tokenId;
  return { ...caller, audit };
}

describe.each(backends)("access in one statement on $name", (backend) => {
  let database: Database;
  let statements: () => number;
  let url: string | undefined;
  let domain: DomainDeps;
  /** The size of every batch the access queue served. */
  const batches: number[] = [];
  beforeAll(async () => {
    ({ database, statements, url } = await countingDatabase(backend));
    domain = testDomain(
      { main: database },
      { accessBatching: { max: 64, onBatch: (_region, size) => void batches.push(size) } },
    );
  }, 180_000);
  afterAll(() => database?.close());

  /** Runs `fn` and returns the number of statements it sent. */
  const counted = async <T>(fn: () => Promise<T>): Promise<{ result: T; n: number }> => {
    const before = statements();
    const result = await fn();
    return { result, n: statements() - before };
  };

  const eventOf = async (c: Caller) =>
    database.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.id, c.audit?.id ?? ""));

  it("serves by id, by path, and by each revision selector in one statement, with its audit event", async () => {
    const name = unique();
    const { secret } = await newSecret(domain, { name, path: "/one" }, "v1");
    await addVersion(domain, secret.id, "v2");
    await addVersion(domain, secret.id, "v3", { enabled: false });
    const cases: [() => Promise<{ data: Uint8Array; revision: number }>, string, number][] = [];
    for (const [revision, payload, expected] of [
      ["1", "v1", 1],
      ["latest_enabled", "v2", 2],
    ] as const) {
      cases.push([
        () => accessVersion(domain, c, { region: "", secretId: secret.id, revision }),
        payload,
        expected,
      ]);
      cases.push([
        () =>
          accessVersionByPath(domain, c, {
            region: "",
            projectId: PROJECT,
            path: "/one",
            name,
            revision,
          }),
        payload,
        expected,
      ]);
    }
    let c = audited();
    for (const [call, payload, revision] of cases) {
      c = audited();
      const { result, n } = await counted(call);
      expect(n).toBe(1);
      expect(textOf(result.data)).toBe(payload);
      expect(result.revision).toBe(revision);
      expect(c.audit?.written).toBe(true);
      expect(c.audit?.facts).toEqual({
        projectId: PROJECT,
        secretId: secret.id,
        secretPath: "/one",
        secretName: name,
        revision,
      });
      const events = await eventOf(c);
      expect(events.map((e) => [e.outcome, e.secretId, e.revision, e.secretName])).toEqual([
        ["OK", secret.id, revision, name],
      ]);
    }
    // A refusal writes nothing (the chain writes the failure event).
    c = audited();
    await expectDomainError(
      accessVersion(domain, c, { region: "", secretId: secret.id, revision: "latest" }),
      "failed_precondition",
      `version 3 of secret ${secret.id} is disabled`,
    );
    expect(c.audit?.written).toBe(false);
    expect(await eventOf(c)).toEqual([]);
  });

  it("serves concurrent accesses in batches of one statement each, every call with its own event", async () => {
    const secrets = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const { secret } = await newSecret(domain, { path: "/batch" }, `payload ${i}`);
        return secret;
      }),
    );
    const callers = secrets.map(audited);
    batches.length = 0;
    const { result, n } = await counted(() =>
      Promise.all(
        secrets.map((secret, i) =>
          accessVersion(domain, callers[i] as Caller, {
            region: "",
            secretId: secret.id,
            revision: "latest",
          }),
        ),
      ),
    );
    // 100 calls made in one turn of the event loop: a batch of 64 (the cap),
    // then the others. On Postgres the first call finds the queue idle and is
    // served at once, alone.
    const expected = backend.name === "postgres" ? [1, 64, 35] : [64, 36];
    expect(batches).toEqual(expected);
    expect(n).toBe(expected.length);
    expect(result.map((r) => textOf(r.data))).toEqual(secrets.map((_, i) => `payload ${i}`));
    for (const [i, c] of callers.entries()) {
      expect(c.audit?.written).toBe(true);
      const events = await eventOf(c);
      expect(events.map((e) => [e.outcome, e.secretId, e.revision])).toEqual([
        ["OK", secrets[i]?.id, 1],
      ]);
    }
  });

  it("serves the rest of a batch when one call's row fails it, that call alone getting the error", async () => {
    const secrets = await Promise.all(
      Array.from({ length: 4 }, async (_, i) => (await newSecret(domain, {}, `own ${i}`)).secret),
    );
    const first = audited();
    await accessVersion(domain, first, {
      region: "",
      secretId: secrets[0]?.id ?? "",
      revision: "1",
    });
    // Its audit event's id is taken: this call's row fails any statement it is in.
    const clash = audited();
    if (clash.audit && first.audit) clash.audit.id = first.audit.id;
    const callers = [audited(), clash, audited(), audited()];
    batches.length = 0;
    const outcomes = await Promise.allSettled(
      secrets.map((secret, i) =>
        accessVersion(domain, callers[i] as Caller, {
          region: "",
          secretId: secret.id,
          revision: "1",
        }),
      ),
    );
    expect(batches).toEqual([4]);
    expect(outcomes.map((o) => o.status)).toEqual([
      "fulfilled",
      "rejected",
      "fulfilled",
      "fulfilled",
    ]);
    // Its own error: the audit event's id is taken (unique_violation).
    expect(pgErrorCode((outcomes[1] as PromiseRejectedResult).reason)).toBe("23505");
    for (const i of [0, 2, 3]) {
      const o = outcomes[i] as PromiseFulfilledResult<{ data: Uint8Array }>;
      expect(textOf(o.value.data)).toBe(`own ${i}`);
      expect(await eventOf(callers[i] as Caller)).toHaveLength(1);
    }
    expect(clash.audit?.written).toBe(false);
  });

  it("consumes a single-access version in the same one statement", async () => {
    const { secret } = await newSecret(
      domain,
      { ephemeralPolicy: { expiresOnceAccessed: true, action: "delete" } },
      "once",
    );
    const c = audited();
    const { result, n } = await counted(() =>
      accessVersion(domain, c, { region: "", secretId: secret.id, revision: "1" }),
    );
    expect(n).toBe(1);
    expect(textOf(result.data)).toBe("once");
    expect(result.singleAccess).toBe(true);
    expect(await eventOf(c)).toHaveLength(1);
    const after = await getVersion(domain, caller, {
      region: "",
      secretId: secret.id,
      revision: "1",
    });
    expect(after.status).toBe("deleted");
    expect(after.consumedAt).not.toBeNull();
  });

  it("gives exactly one of 64 concurrent consumers the payload", async () => {
    const { secret } = await newSecret(
      domain,
      { ephemeralPolicy: { expiresOnceAccessed: true, action: "disable" } },
      "only once",
    );
    const callers = Array.from({ length: 64 }, audited);
    // On Postgres, another connection holds the version's row lock while the
    // accesses start, so that every pooled statement reads the version as
    // servable before any can consume it: the database alone must pick one.
    // (PGlite has one connection: its statements cannot overlap.)
    const holder = url === undefined ? undefined : postgres(url, { max: 1, onnotice: () => {} });
    let release = () => {};
    let locked = () => {};
    const lockTaken = new Promise<void>((r) => {
      locked = r;
    });
    const held = holder?.begin(async (tx) => {
      await tx`select 1 from secret_versions where secret_id = ${secret.id} and revision = 1 for update`;
      await new Promise<void>((r) => {
        release = r;
        locked();
      });
    });
    if (held !== undefined) await lockTaken;
    // Settled from the start: the losers reject while the lock is still held.
    const settled = Promise.allSettled(
      callers.map((c) =>
        accessVersion(domain, c, { region: "", secretId: secret.id, revision: "1" }),
      ),
    );
    await new Promise((r) => setTimeout(r, 500));
    release();
    await held;
    await holder?.end({ timeout: 5 });
    const outcomes = await settled;
    const served = outcomes.flatMap((o) => (o.status === "fulfilled" ? [o.value] : []));
    expect(served.map((r) => textOf(r.data))).toEqual(["only once"]);
    const refused = outcomes.flatMap((o) => (o.status === "rejected" ? [o.reason] : []));
    expect(refused).toHaveLength(63);
    for (const e of refused) {
      expect(e).toMatchObject({ kind: "failed_precondition" });
      expect(String(e.message)).toContain("was already accessed");
    }
    // One OK event, from the one who was served.
    expect(callers.filter((c) => c.audit?.written)).toHaveLength(1);
    const events = await database.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.secretId, secret.id));
    expect(events.filter((e) => e.method.endsWith("AccessSecretVersion"))).toHaveLength(1);
  }, 60_000);

  it("never consumes a version whose master key this replica lacks", async () => {
    const { secret } = await newSecret(
      domain,
      { ephemeralPolicy: { expiresOnceAccessed: true, action: "delete" } },
      "keep me",
    );
    const stranger: DomainDeps = {
      ...domain,
      keyRing: () => ({ activeId: "other", keys: new Map([["other", generateKey()]]) }),
    };
    const c = audited();
    await expect(
      accessVersion(stranger, c, { region: "", secretId: secret.id, revision: "1" }),
    ).rejects.toThrow('unknown master key id "test-1"');
    expect(c.audit?.written).toBe(false);
    expect(await eventOf(c)).toEqual([]);
    const read = await accessVersion(domain, caller, {
      region: "",
      secretId: secret.id,
      revision: "1",
    });
    expect(textOf(read.data)).toBe("keep me");
  });

  it("batches only calls made with the same master keys (a key ring rolled out meanwhile)", async () => {
    const { secret } = await newSecret(
      domain,
      { ephemeralPolicy: { expiresOnceAccessed: true, action: "delete" } },
      "keyed",
    );
    const { secret: plain } = await newSecret(domain, {}, "plain");
    // The same queues (one per database), another ring: its calls form batches of their own.
    const stranger: DomainDeps = {
      ...domain,
      keyRing: () => ({ activeId: "other", keys: new Map([["other", generateKey()]]) }),
    };
    batches.length = 0;
    const input = (secretId: string) => ({ region: "", secretId, revision: "1" });
    const outcomes = await Promise.allSettled([
      accessVersion(stranger, audited(), input(secret.id)),
      accessVersion(domain, audited(), input(plain.id)),
      accessVersion(stranger, audited(), input(plain.id)),
      accessVersion(domain, audited(), input(plain.id)),
    ]);
    // On Postgres the first call finds the queue idle and is served at once, alone.
    expect(batches).toEqual(backend.name === "postgres" ? [1, 2, 1] : [2, 2]);
    expect(outcomes.map((o) => o.status)).toEqual([
      "rejected",
      "fulfilled",
      "rejected",
      "fulfilled",
    ]);
    // The stranger could not spend the single-access version: it is still there.
    const read = await accessVersion(domain, caller, input(secret.id));
    expect(textOf(read.data)).toBe("keyed");
  });

  it("creates a version in four statements (BEGIN, lock, one write, COMMIT), with its event", async () => {
    const { secret } = await newSecret(domain, {}, "v1");
    const c = audited();
    const { result, n } = await counted(() =>
      createVersion(domain, c, {
        region: "",
        secretId: secret.id,
        data: utf8("v2"),
        description: "second",
        enabled: true,
        disablePrevious: true,
        etag: "",
      }),
    );
    expect(n).toBe(4);
    expect(result).toMatchObject({ revision: 2, status: "enabled", latest: true });
    expect(result).toMatchObject({ description: "second", consumedAt: null });
    expect(result.createdAt.getTime()).toBeGreaterThan(Date.now() - 60_000);
    const first = await getVersion(domain, caller, {
      region: "",
      secretId: secret.id,
      revision: "1",
    });
    expect(first.status).toBe("disabled");
    expect(c.audit?.written).toBe(true);
    const events = await eventOf(c);
    expect(events.map((e) => [e.outcome, e.secretId, e.revision])).toEqual([["OK", secret.id, 2]]);
  });

  it("refuses in SQL what authorize() refuses, consuming nothing", async () => {
    const { secret } = await newSecret(
      domain,
      { path: "/team/a", ephemeralPolicy: { expiresOnceAccessed: true, action: "disable" } },
      "guarded",
    );
    const as = (
      grants: { projectId: string; role: "read_only" | "secret_access"; pathPrefix: string }[],
    ) => ({
      ...audited(),
      principal: { tokenId: caller.principal?.tokenId ?? "", grants },
    });
    const input = { region: "", secretId: secret.id, revision: "1" };
    const outside = as([{ projectId: PROJECT, role: "secret_access", pathPrefix: "/team/ab" }]);
    await expectDomainError(
      accessVersion(domain, outside, input),
      "not_found",
      `secret ${secret.id} not found`,
    );
    const reader = as([{ projectId: PROJECT, role: "read_only", pathPrefix: "/team" }]);
    await expectDomainError(accessVersion(domain, reader, input), "permission_denied", "read_only");
    expect(outside.audit?.written || reader.audit?.written).toBe(false);
    const accessor = as([
      { projectId: PROJECT, role: "read_only", pathPrefix: "/" },
      { projectId: PROJECT, role: "secret_access", pathPrefix: "/team/a" },
    ]);
    expect(textOf((await accessVersion(domain, accessor, input)).data)).toBe("guarded");
  });
});
