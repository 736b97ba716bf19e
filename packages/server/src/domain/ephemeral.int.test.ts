import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Database, openDatabase } from "../db/client.ts";
import { migrate } from "../db/migrate.ts";
import {
  backends,
  dropPostgresDatabase,
  ensureProjects,
  seedProjects,
  testDomain,
  testKeyRing,
} from "../testing/backends.ts";
import {
  addVersion,
  caller,
  databasesFor,
  expectDomainError,
  expectInvalid,
  expireNow,
  newSecret,
  query,
  textOf,
} from "../testing/domain-helpers.ts";
import { runUnless } from "../testing/skip.ts";
import { type AccessResult, accessVersion, accessVersionByPath } from "./access-version.ts";
import type { DomainDeps } from "./context.ts";
import { deleteSecret, restoreSecret } from "./delete-secret.ts";
import type { EphemeralPolicyInput } from "./ephemeral-policy.ts";
import { getSecret, listSecrets } from "./read-secrets.ts";
import { getVersion, listVersions } from "./read-versions.ts";
import { sweepRegion } from "./sweeper.ts";
import { updateSecret } from "./update-secret.ts";
import { updateVersion } from "./update-version.ts";
import { deleteVersion, disableVersion, enableVersion, restoreVersion } from "./version-state.ts";

const HOUR = 3_600_000;
const YEAR = 365 * 24 * HOUR;
const once = (action: "disable" | "delete" = "disable"): EphemeralPolicyInput => ({
  expiresOnceAccessed: true,
  action,
});
const ttl = (ttlMs: number, action?: "disable" | "delete"): EphemeralPolicyInput => ({
  ttlMs,
  expiresOnceAccessed: false,
  ...(action && { action }),
});

/** Splits settled accesses into payloads served and errors raised. */
function outcomes(results: PromiseSettledResult<AccessResult>[]) {
  const served = results.flatMap((r) => (r.status === "fulfilled" ? [textOf(r.value.data)] : []));
  const refused = results.flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
  return { served, refused };
}

describe.each(backends)("ephemeral secrets on $name", (backend) => {
  const dbs = databasesFor(backend);
  let domain: DomainDeps;
  beforeAll(async () => {
    domain = await dbs.open();
  });
  afterAll(() => dbs.close());

  const access = (secretId: string, revision = "1") =>
    accessVersion(domain, caller, { region: "", secretId, revision });
  const version = (secretId: string, revision = "1") =>
    getVersion(domain, caller, { region: "", secretId, revision });
  const enable = (secretId: string, revision = "1") =>
    enableVersion(domain, caller, { region: "", secretId, revision, etag: "" });
  const sealedColumns = async (secretId: string, revision = 1) => {
    const [row] = await query<{ key_id: unknown; wrapped_key: unknown; ciphertext: unknown }>(
      dbs.db(),
      sql`select key_id, wrapped_key, ciphertext from secret_versions where secret_id = ${secretId} and revision = ${revision}`,
    );
    return row;
  };

  it("stores the policy at creation; each version expires time_to_live after it is created or enabled", async () => {
    const { secret, firstVersion } = await newSecret(domain, {
      ephemeralPolicy: ttl(HOUR, "delete"),
    });
    expect(secret).toMatchObject({
      ttlMs: HOUR,
      expiresOnceAccessed: false,
      ephemeralAction: "delete",
    });
    expect(firstVersion).toMatchObject({ expiresOnceAccessed: false, ephemeralAction: "delete" });
    expect(firstVersion?.expiresAt?.getTime()).toBe(
      (firstVersion?.createdAt.getTime() ?? 0) + HOUR,
    );

    const v2 = await addVersion(domain, secret.id, "two");
    expect(v2.expiresAt?.getTime()).toBe(v2.createdAt.getTime() + HOUR);
    // A disabled version's clock does not run; enabling it starts a full time to live.
    const v3 = await addVersion(domain, secret.id, "three", { enabled: false });
    expect(v3.expiresAt).toBeNull();
    const enabled = await enable(secret.id, "3");
    expect(enabled.expiresAt?.getTime()).toBe(enabled.updatedAt.getTime() + HOUR);

    const { secret: byDefault } = await newSecret(domain, { ephemeralPolicy: ttl(HOUR) });
    expect(byDefault.ephemeralAction).toBe("disable");
  });

  it("bounds time_to_live to 1 second .. 365 days and refuses an empty policy", async () => {
    const projectId = randomUUID();
    await ensureProjects(domain, projectId);
    const create = (ephemeralPolicy: EphemeralPolicyInput) =>
      newSecret(domain, { projectId, ephemeralPolicy });
    const field = "ephemeral_policy.time_to_live";
    await expectInvalid(create(ttl(999)), field, "between 1 second and 365 days (got 999 ms)");
    await expectInvalid(create(ttl(0)), field, "between 1 second and 365 days");
    await expectInvalid(create(ttl(YEAR + 1)), field, "between 1 second and 365 days");
    await expectInvalid(create(ttl(1000.5)), field, "whole number of milliseconds");
    await expectInvalid(
      create({ expiresOnceAccessed: false }),
      "ephemeral_policy",
      "must set time_to_live or expires_once_accessed",
    );
    const list = () =>
      listSecrets(domain, caller, {
        region: "",
        projectId,
        tags: [],
        orderBy: "name_asc",
        page: 0,
        pageSize: 0,
      });
    expect((await list()).totalCount).toBe(0);
    expect((await create(ttl(1000))).secret.ttlMs).toBe(1000);
    expect((await create(ttl(YEAR))).secret.ttlMs).toBe(YEAR);
    expect((await list()).totalCount).toBe(2);
  });

  it("cannot add a policy to a secret created without one", async () => {
    const { secret } = await newSecret(domain);
    await expectDomainError(
      updateSecret(domain, caller, {
        region: "",
        secretId: secret.id,
        ephemeralPolicy: ttl(HOUR),
        etag: "",
      }),
      "failed_precondition",
      "was created without an ephemeral policy",
    );
    expect(await getSecret(domain, caller, { region: "", secretId: secret.id })).toEqual(secret);
    expect((await version(secret.id)).expiresAt).toBeNull();
  });

  it("changes a policy, never removes it; existing versions keep their properties", async () => {
    const { secret, firstVersion } = await newSecret(domain, { ephemeralPolicy: ttl(HOUR) });
    const update = (ephemeralPolicy: EphemeralPolicyInput) =>
      updateSecret(domain, caller, { region: "", secretId: secret.id, ephemeralPolicy, etag: "" });

    const changed = await update(ttl(2 * HOUR, "delete"));
    expect(changed).toMatchObject({ ttlMs: 2 * HOUR, ephemeralAction: "delete" });
    expect(await version(secret.id)).toMatchObject({
      expiresAt: firstVersion?.expiresAt,
      ephemeralAction: "disable",
    });
    const v2 = await addVersion(domain, secret.id, "two");
    expect(v2.expiresAt?.getTime()).toBe(v2.createdAt.getTime() + 2 * HOUR);
    expect(v2.ephemeralAction).toBe("delete");

    const current = await getSecret(domain, caller, { region: "", secretId: secret.id });
    await expectInvalid(
      update({ expiresOnceAccessed: false }),
      "ephemeral_policy",
      "cannot be removed",
    );
    expect(await getSecret(domain, caller, { region: "", secretId: secret.id })).toEqual(current);

    const onceOnly = await update(once());
    expect(onceOnly).toMatchObject({
      ttlMs: null,
      expiresOnceAccessed: true,
      ephemeralAction: "disable",
    });
    const v3 = await addVersion(domain, secret.id, "three");
    expect(v3).toMatchObject({ expiresAt: null, expiresOnceAccessed: true });
  });

  it("never serves a version past expires_at, even before the sweeper has run", async () => {
    const { secret, firstVersion } = await newSecret(domain, { ephemeralPolicy: ttl(2500) });
    expect(textOf((await access(secret.id)).data)).toBe("first payload");
    const expiresAt = firstVersion?.expiresAt?.getTime() ?? 0;
    await sleep(Math.max(0, expiresAt - Date.now()) + 100);

    await expectDomainError(
      access(secret.id),
      "failed_precondition",
      `version 1 of secret ${secret.id} expired at ${firstVersion?.expiresAt?.toISOString()}`,
    );
    await expectDomainError(access(secret.id, "latest"), "failed_precondition", "expired");
    await expectDomainError(
      access(secret.id, "latest_enabled"),
      "not_found",
      "has no enabled version",
    );
    await expectDomainError(
      accessVersionByPath(domain, caller, {
        region: "",
        projectId: secret.projectId,
        path: "/",
        name: secret.name,
        revision: "1",
      }),
      "failed_precondition",
      "expired",
    );
    // No sweeper ran, yet the status already says what access does (issue 11 item 16).
    expect((await version(secret.id)).status).toBe("disabled");

    await sweepRegion(dbs.db(), domain.deletionWindowMs);
    expect((await version(secret.id)).status).toBe("disabled");
    await expectDomainError(access(secret.id), "failed_precondition", "expired at");
  });

  it("skips expired versions for latest_enabled, and re-enabling gives a fresh time to live", async () => {
    const { secret } = await newSecret(domain, { ephemeralPolicy: ttl(HOUR) }, "one");
    await addVersion(domain, secret.id, "two");
    await expireNow(dbs.db(), secret.id, 2);
    expect(textOf((await access(secret.id, "latest_enabled")).data)).toBe("one");
    await expectDomainError(access(secret.id, "2"), "failed_precondition", "expired");

    const renewed = await enable(secret.id, "2");
    expect(renewed.status).toBe("enabled");
    expect(renewed.expiresAt?.getTime()).toBe(renewed.updatedAt.getTime() + HOUR);
    expect(textOf((await access(secret.id, "latest_enabled")).data)).toBe("two");
  });

  it("single access: the first access returns the payload and consumes it; metadata reads never do", async () => {
    const { secret } = await newSecret(domain, { ephemeralPolicy: once() }, "read me once");
    for (let i = 0; i < 3; i++) {
      await getSecret(domain, caller, { region: "", secretId: secret.id });
      await version(secret.id);
      await version(secret.id, "latest_enabled");
      await listVersions(domain, caller, {
        region: "",
        secretId: secret.id,
        statuses: [],
        page: 0,
        pageSize: 0,
      });
    }
    expect(await version(secret.id)).toMatchObject({
      status: "enabled",
      consumedAt: null,
      expiresOnceAccessed: true,
    });

    expect(textOf((await access(secret.id, "latest_enabled")).data)).toBe("read me once");
    await expectDomainError(
      access(secret.id),
      "failed_precondition",
      `version 1 of secret ${secret.id} was already accessed: it is single-access`,
    );
    const consumed = await version(secret.id);
    expect(consumed.status).toBe("disabled");
    expect(consumed.consumedAt).toBeInstanceOf(Date);
    // The disable action keeps the payload, but a consumed version is never
    // served again: enabling it is refused (issue 11 item 4).
    expect((await sealedColumns(secret.id))?.ciphertext).not.toBeNull();
    await expectDomainError(enable(secret.id), "failed_precondition", "can never be served again");
    await expectDomainError(access(secret.id), "failed_precondition", "already accessed");
  });

  it("single access with the delete action destroys the payload in the same statement", async () => {
    const { secret } = await newSecret(domain, { ephemeralPolicy: once("delete") }, "burn");
    expect(secret.versionCount).toBe(1);
    expect(textOf((await access(secret.id)).data)).toBe("burn");
    const after = await version(secret.id);
    expect(after.status).toBe("deleted");
    expect(after.deletedAt).toBeInstanceOf(Date);
    expect(await sealedColumns(secret.id)).toEqual({
      key_id: null,
      wrapped_key: null,
      ciphertext: null,
    });
    expect(
      (await getSecret(domain, caller, { region: "", secretId: secret.id })).versionCount,
    ).toBe(0);
    await expectDomainError(access(secret.id), "failed_precondition", "already accessed");
    await expectDomainError(
      enable(secret.id),
      "failed_precondition",
      "is destroyed: its payload is gone for good",
    );
  });

  for (const action of ["disable", "delete"] as const) {
    it(`serves a single-access version exactly once to 50 concurrent accesses (action ${action})`, async () => {
      const { secret } = await newSecret(domain, { ephemeralPolicy: once(action) }, "only once");
      const results = await Promise.allSettled(
        Array.from({ length: 50 }, (_, i) =>
          i % 2 === 0
            ? access(secret.id, i % 4 === 0 ? "1" : "latest")
            : accessVersionByPath(domain, caller, {
                region: "",
                projectId: secret.projectId,
                path: "/",
                name: secret.name,
                revision: "1",
              }),
        ),
      );
      const { served, refused } = outcomes(results);
      expect(served).toEqual(["only once"]);
      expect(refused).toHaveLength(49);
      for (const error of refused) {
        expect(error).toMatchObject({ kind: "failed_precondition" });
        expect(String(error.message)).toContain("already accessed");
      }
      expect((await version(secret.id)).status).toBe(action === "delete" ? "deleted" : "disabled");
    });
  }

  it(
    "serves a single-access version once across two replicas of the server",
    runUnless(
      backend.freshUrl === undefined
        ? "two replicas share one Postgres database; the embedded PGlite serves one process"
        : undefined,
    ),
    async () => {
      const url = await backend.freshUrl?.();
      if (url === undefined) throw new Error("unreachable: Postgres only");
      const replicas: Database[] = [];
      try {
        for (let i = 0; i < 2; i++) {
          replicas.push(await openDatabase({ driver: "postgres", url, poolSize: 10 }));
        }
        const [first, second] = replicas as [Database, Database];
        await migrate(first.db);
        await seedProjects(first.db);
        const ring = testKeyRing();
        const domains = [
          testDomain({ "test-region": first }, { keyRing: ring }),
          testDomain({ "test-region": second }, { keyRing: ring }),
        ];
        for (const action of ["disable", "delete"] as const) {
          const { secret } = await newSecret(
            domains[0] as DomainDeps,
            { ephemeralPolicy: once(action) },
            "one replica wins",
          );
          const results = await Promise.allSettled(
            Array.from({ length: 50 }, (_, i) =>
              accessVersion(domains[i % 2] as DomainDeps, caller, {
                region: "",
                secretId: secret.id,
                revision: "1",
              }),
            ),
          );
          const { served, refused } = outcomes(results);
          expect(served).toEqual(["one replica wins"]);
          expect(refused).toHaveLength(49);
          for (const error of refused) expect(error).toMatchObject({ kind: "failed_precondition" });
        }
      } finally {
        await Promise.all(replicas.map((r) => r.close()));
        await dropPostgresDatabase(url);
      }
    },
  );

  it("deletes an ephemeral secret at once, with no restore window", async () => {
    const { secret } = await newSecret(domain, { ephemeralPolicy: ttl(HOUR) });
    expect(
      await deleteSecret(domain, caller, { region: "", secretId: secret.id, etag: "" }),
    ).toBeUndefined();
    await expectDomainError(
      getSecret(domain, caller, { region: "", secretId: secret.id }),
      "not_found",
    );
    await expectDomainError(
      restoreSecret(domain, caller, { region: "", secretId: secret.id }),
      "not_found",
    );
    const scheduled = await listSecrets(domain, caller, {
      region: "",
      projectId: secret.projectId,
      name: secret.name,
      tags: [],
      scheduledForDeletion: true,
      orderBy: "name_asc",
      page: 0,
      pageSize: 0,
    });
    expect(scheduled.totalCount).toBe(0);
    const rows = await query(
      dbs.db(),
      sql`select 1 from secret_versions where secret_id = ${secret.id}`,
    );
    expect(rows).toHaveLength(0);
    await newSecret(domain, { name: secret.name });
  });

  it("changes a version's ephemeral properties within the same rules", async () => {
    const { secret: plain } = await newSecret(domain);
    const props = (
      secretId: string,
      p: NonNullable<Parameters<typeof updateVersion>[2]["ephemeralProperties"]>,
    ) =>
      updateVersion(domain, caller, {
        region: "",
        secretId,
        revision: "1",
        ephemeralProperties: p,
        etag: "",
      });
    await expectDomainError(
      props(plain.id, { expiresOnceAccessed: true }),
      "failed_precondition",
      "has no ephemeral policy",
    );

    const { secret } = await newSecret(domain, { ephemeralPolicy: ttl(HOUR) }, "once now");
    await expectInvalid(
      props(secret.id, { expiresOnceAccessed: false }),
      "ephemeral_properties",
      "cannot be removed",
    );
    await expectInvalid(
      props(secret.id, { expiresAt: new Date(Date.now() + 100), expiresOnceAccessed: false }),
      "ephemeral_properties.expires_at",
      "between 1 second and 365 days",
    );
    const before = await version(secret.id);
    expect(before.expiresOnceAccessed).toBe(false);

    const changed = await props(secret.id, {
      ...(before.expiresAt !== null && { expiresAt: before.expiresAt }),
      expiresOnceAccessed: true,
      action: "delete",
    });
    expect(changed).toMatchObject({
      expiresAt: before.expiresAt,
      expiresOnceAccessed: true,
      ephemeralAction: "delete",
    });
    expect(textOf((await access(secret.id)).data)).toBe("once now");
    await expectDomainError(access(secret.id), "failed_precondition", "already accessed");
  });

  // Issue 11 item 4: secret_write could undo single access.

  it("never serves a consumed single-access version again: enable, update, delete and restore all keep it consumed", async () => {
    const { secret } = await newSecret(domain, { ephemeralPolicy: once() }, "pin 482913");
    const ref = { region: "", secretId: secret.id, revision: "1", etag: "" };
    expect(textOf((await access(secret.id)).data)).toBe("pin 482913");
    const consumed = await version(secret.id);
    expect(consumed).toMatchObject({ status: "disabled", expiresOnceAccessed: true });

    // Enabling is refused and changes nothing: the version stays consumed.
    await expectDomainError(
      enable(secret.id),
      "failed_precondition",
      `version 1 was consumed by its single access on ${consumed.consumedAt?.toISOString()} and can never be served again`,
    );
    expect(await version(secret.id)).toEqual(consumed);
    // Nor can its single access be turned off first.
    await expectDomainError(
      updateVersion(domain, caller, {
        ...ref,
        ephemeralProperties: { expiresAt: new Date(Date.now() + HOUR), expiresOnceAccessed: false },
      }),
      "failed_precondition",
      "ephemeral_properties.expires_once_accessed: version 1 is single-access; that cannot be turned off",
    );
    // Nor does a trip through deletion and restore wash the consumption out.
    await deleteVersion(domain, caller, ref);
    await restoreVersion(domain, caller, ref);
    await expectDomainError(enable(secret.id), "failed_precondition", "can never be served again");
    for (let i = 0; i < 4; i++) {
      await expectDomainError(access(secret.id), "failed_precondition", "already accessed");
    }
    expect((await version(secret.id)).consumedAt).toEqual(consumed.consumedAt);

    // Even a row put back to enabled by hand (as the old EnableSecretVersion
    // did, minus the consumed_at it cleared) is refused by the database's own
    // rule of what may be served.
    await dbs
      .db()
      .execute(
        sql`update secret_versions set status = 'enabled', expires_once_accessed = false where secret_id = ${secret.id}`,
      );
    await expectDomainError(access(secret.id), "failed_precondition", "already accessed");
    await expectDomainError(
      access(secret.id, "latest_enabled"),
      "not_found",
      "has no enabled version",
    );
  });

  it("lets an update tighten a version's ephemeral properties, never weaken them", async () => {
    const policy = { ttlMs: HOUR, expiresOnceAccessed: true, action: "delete" as const };
    const { secret, firstVersion } = await newSecret(domain, { ephemeralPolicy: policy }, "otp");
    const expiresAt = firstVersion?.expiresAt ?? new Date(0);
    const update = (p: {
      expiresAt?: Date;
      expiresOnceAccessed: boolean;
      action?: "disable" | "delete";
    }) =>
      updateVersion(domain, caller, {
        region: "",
        secretId: secret.id,
        revision: "1",
        ephemeralProperties: p,
        etag: "",
      });
    const weakening = [
      {
        p: { expiresAt, expiresOnceAccessed: false, action: "delete" as const },
        says: "ephemeral_properties.expires_once_accessed: version 1 is single-access; that cannot be turned off",
      },
      {
        p: { expiresOnceAccessed: true, action: "delete" as const },
        says: `ephemeral_properties.expires_at: version 1 expires at ${expiresAt.toISOString()}; the expiry cannot be removed`,
      },
      {
        p: {
          expiresAt: new Date(expiresAt.getTime() + 60_000),
          expiresOnceAccessed: true,
          action: "delete" as const,
        },
        says: "ephemeral_properties.expires_at: version 1 expires at",
        also: "it can be moved earlier, not later",
      },
      {
        p: { expiresAt, expiresOnceAccessed: true, action: "disable" as const },
        says: "ephemeral_properties.action: version 1 is destroyed when it expires (delete); that cannot become disable",
      },
    ];
    const before = await version(secret.id);
    for (const { p, says, also } of weakening) {
      await expectDomainError(update(p), "failed_precondition", says, ...(also ? [also] : []));
      expect(await version(secret.id)).toEqual(before);
    }

    // Tightening is allowed: an earlier expiry; the same properties; an
    // unspecified action keeps delete (it used to fall back to disable).
    const earlier = new Date(expiresAt.getTime() - 60_000);
    expect(await update({ expiresAt: earlier, expiresOnceAccessed: true })).toMatchObject({
      expiresAt: earlier,
      expiresOnceAccessed: true,
      ephemeralAction: "delete",
    });

    // On a secret whose policy is weaker, a version can be made single-access,
    // given the delete action and an expiry; then those stick.
    const { secret: loose } = await newSecret(domain, { ephemeralPolicy: ttl(HOUR) }, "loose");
    const looseRef = { region: "", secretId: loose.id, revision: "1", etag: "" };
    const v = await version(loose.id);
    expect(v).toMatchObject({ expiresOnceAccessed: false, ephemeralAction: "disable" });
    const soon = new Date(Date.now() + 30 * 60_000);
    const tightened = await updateVersion(domain, caller, {
      ...looseRef,
      ephemeralProperties: { expiresAt: soon, expiresOnceAccessed: true, action: "delete" },
    });
    expect(tightened).toMatchObject({
      expiresAt: soon,
      expiresOnceAccessed: true,
      ephemeralAction: "delete",
    });
    await expectDomainError(
      updateVersion(domain, caller, {
        ...looseRef,
        ephemeralProperties: { expiresAt: soon, expiresOnceAccessed: false, action: "delete" },
      }),
      "failed_precondition",
      "cannot be turned off",
    );
  });

  it("keeps a version single-access and its delete action when it is enabled after the policy was relaxed", async () => {
    const { secret } = await newSecret(
      domain,
      { ephemeralPolicy: { expiresOnceAccessed: true, action: "delete" } },
      "one read",
    );
    const ref = { region: "", secretId: secret.id, revision: "1", etag: "" };
    // A policy may change (never be removed): here to a plain time to live.
    await updateSecret(domain, caller, {
      region: "",
      secretId: secret.id,
      ephemeralPolicy: { ttlMs: HOUR, expiresOnceAccessed: false, action: "disable" },
      etag: "",
    });
    await disableVersion(domain, caller, ref);
    const enabled = await enable(secret.id);
    // Enabling takes the new time to live, but does not weaken what the version had.
    expect(enabled).toMatchObject({
      status: "enabled",
      expiresOnceAccessed: true,
      ephemeralAction: "delete",
    });
    expect(enabled.expiresAt).toBeInstanceOf(Date);
    expect(textOf((await access(secret.id)).data)).toBe("one read");
    await expectDomainError(access(secret.id), "failed_precondition", "already accessed");
    expect((await version(secret.id)).status).toBe("deleted");
  });

  // Issue 11 item 16: status is computed when it is read, not when the sweeper runs.

  for (const action of ["disable", "delete"] as const) {
    it(`reports an expired version (action ${action}) as ${action === "delete" ? "deleted" : "disabled"} before the sweeper runs, in get, list, list filters and watch events`, async () => {
      const { secret, firstVersion } = await newSecret(domain, {
        ephemeralPolicy: ttl(1000, action),
      });
      const v2 = await addVersion(domain, secret.id, "second");
      expect(v2.status).toBe("enabled");
      const listed = async (statuses: ("enabled" | "disabled" | "deleted")[]) =>
        (
          await listVersions(domain, caller, {
            region: "",
            secretId: secret.id,
            statuses,
            page: 0,
            pageSize: 0,
          })
        ).versions.map((v) => `${v.revision}:${v.status}`);
      expect(await listed(["enabled"])).toEqual(["2:enabled", "1:enabled"]);
      const expiresAt = firstVersion?.expiresAt?.getTime() ?? 0;
      const last = v2.expiresAt?.getTime() ?? 0;
      await sleep(Math.max(0, Math.max(expiresAt, last) - Date.now()) + 100);

      // No sweeper has run: the rows still say enabled.
      const stored = await query<{ status: string }>(
        dbs.db(),
        sql`select status from secret_versions where secret_id = ${secret.id} order by revision`,
      );
      expect(stored.map((r) => r.status)).toEqual(["enabled", "enabled"]);

      const want = action === "delete" ? "deleted" : "disabled";
      const got = await version(secret.id);
      expect(got.status).toBe(want);
      if (action === "delete") expect(got.deletedAt).toEqual(got.expiresAt);
      else expect(got.deletedAt).toBeNull();
      expect((await version(secret.id, "latest")).status).toBe(want);
      expect(await listed(["enabled"])).toEqual([]);
      expect(await listed([want])).toEqual([`2:${want}`, `1:${want}`]);
      expect(await listed([])).toEqual(action === "delete" ? [] : ["2:disabled", "1:disabled"]);
      // The secret counts the versions whose payload is kept, by the same status.
      const counted = await getSecret(domain, caller, { region: "", secretId: secret.id });
      expect(counted.versionCount).toBe(action === "delete" ? 0 : 2);
      await expectDomainError(
        version(secret.id, "latest_enabled"),
        "not_found",
        "has no enabled version",
      );

      // A change that a watcher sees carries the status a reader sees.
      if (action === "disable") {
        await updateVersion(domain, caller, {
          region: "",
          secretId: secret.id,
          revision: "2",
          description: "touched after expiry",
          etag: "",
        });
        const [event] = await query<{ kind: string; version_status: string }>(
          dbs.db(),
          sql`select kind, version_status from watch_events where secret_id = ${secret.id} and revision = 2 order by tx desc, seq desc limit 1`,
        );
        expect(event).toEqual({ kind: "version_updated", version_status: "disabled" });
      } else {
        // Enabling an expired delete version is refused: its payload is as good as destroyed.
        await expectDomainError(enable(secret.id), "failed_precondition", "is destroyed");
      }

      // The sweeper then writes what readers already saw.
      await sweepRegion(dbs.db(), domain.deletionWindowMs);
      expect((await version(secret.id)).status).toBe(want);
    });
  }
});
