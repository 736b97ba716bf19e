import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Database, openDatabase } from "../db/client.ts";
import { migrate } from "../db/migrate.ts";
import {
  backends,
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
import { type AccessResult, accessVersion, accessVersionByPath } from "./access-version.ts";
import type { Domain } from "./context.ts";
import { deleteSecret, restoreSecret } from "./delete-secret.ts";
import { getSecret, listSecrets } from "./read-secrets.ts";
import { getVersion, listVersions } from "./read-versions.ts";
import type { EphemeralPolicyInput } from "./shared.ts";
import { sweepRegion } from "./sweeper.ts";
import { updateSecret } from "./update-secret.ts";
import { updateVersion } from "./update-version.ts";
import { enableVersion } from "./version-state.ts";

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
  let domain: Domain;
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
    // No sweeper ran: the stored status still says enabled, and access refused all the same.
    expect((await version(secret.id)).status).toBe("enabled");

    await sweepRegion(dbs.db(), domain.deletionWindowMs);
    expect((await version(secret.id)).status).toBe("disabled");
    await expectDomainError(access(secret.id), "failed_precondition", "is disabled");
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
    // The disable action keeps the payload: enabling the version allows one more access.
    expect((await sealedColumns(secret.id))?.ciphertext).not.toBeNull();
    await enable(secret.id);
    expect(textOf((await access(secret.id)).data)).toBe("read me once");
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
    await expectDomainError(enable(secret.id), "failed_precondition", "payload is destroyed");
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

  it.skipIf(backend.freshUrl === undefined)(
    "serves a single-access version once across two replicas of the server",
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
            domains[0] as Domain,
            { ephemeralPolicy: once(action) },
            "one replica wins",
          );
          const results = await Promise.allSettled(
            Array.from({ length: 50 }, (_, i) =>
              accessVersion(domains[i % 2] as Domain, caller, {
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

    const changed = await props(secret.id, { expiresOnceAccessed: true, action: "delete" });
    expect(changed).toMatchObject({
      expiresAt: null,
      expiresOnceAccessed: true,
      ephemeralAction: "delete",
    });
    expect(textOf((await access(secret.id)).data)).toBe("once now");
    await expectDomainError(access(secret.id), "failed_precondition", "already accessed");
  });
});
