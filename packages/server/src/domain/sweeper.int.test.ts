import { inArray, sql } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { secrets, secretVersions } from "../db/schema.ts";
import { backends, testDomain } from "../testing/backends.ts";
import {
  addVersion,
  caller,
  databasesFor,
  expectDomainError,
  expireNow,
  newSecret,
  query,
  textOf,
} from "../testing/domain-helpers.ts";
import { accessVersion } from "./access-version.ts";
import type { DomainDeps } from "./context.ts";
import { deleteSecret, restoreSecret } from "./delete-secret.ts";
import { etagOf } from "./etag.ts";
import { getSecret } from "./read-secrets.ts";
import { getVersion, listVersions } from "./read-versions.ts";
import { type SweepCounts, startSweeper, sweepRegion } from "./sweeper.ts";
import { deleteVersion, enableVersion, restoreVersion } from "./version-state.ts";

const HOUR = 3_600_000;
const WEEK = 7 * 24 * HOUR;
const nothing: SweepCounts = {
  expired: 0,
  versionsDestroyed: 0,
  secretsDestroyed: 0,
  watchEventsPruned: 0,
  auditEventsPruned: 0,
  exchangedTokensPruned: 0,
};

describe.each(backends)("sweeper on $name", (backend) => {
  const dbs = databasesFor(backend);
  let domain: DomainDeps;
  beforeAll(async () => {
    domain = await dbs.open({ deletionWindowMs: WEEK });
  });
  afterAll(() => dbs.close());
  // Each test counts what one sweep does, so it starts from a database with
  // nothing left for the sweeper from earlier tests.
  beforeEach(async () => {
    await sweepRegion(dbs.db(), 0);
  });

  const sweep = (windowMs: number) => sweepRegion(dbs.db(), windowMs);
  const version = (secretId: string, revision: string) =>
    getVersion(domain, caller, { region: "", secretId, revision });
  const secretOf = (secretId: string) => getSecret(domain, caller, { region: "", secretId });
  const ref = (secretId: string, revision: string) => ({
    region: "",
    secretId,
    revision,
    etag: "",
  });
  const sealed = async (secretId: string, revision: number) => {
    const [row] = await query<{ key_id: unknown; wrapped_key: unknown; ciphertext: unknown }>(
      dbs.db(),
      sql`select key_id, wrapped_key, ciphertext from secret_versions where secret_id = ${secretId} and revision = ${revision}`,
    );
    return row;
  };
  const destroyed = { key_id: null, wrapped_key: null, ciphertext: null };

  it("disables expired versions whose action is disable, keeping their payload", async () => {
    const ephemeral = { ttlMs: HOUR, expiresOnceAccessed: false, action: "disable" } as const;
    const { secret } = await newSecret(domain, { ephemeralPolicy: ephemeral }, "one");
    await addVersion(domain, secret.id, "two");
    const { secret: plain } = await newSecret(domain);
    await expireNow(dbs.db(), secret.id, 1);
    const before = await secretOf(secret.id);

    expect(await sweep(WEEK)).toEqual({ ...nothing, expired: 1 });
    expect((await version(secret.id, "1")).status).toBe("disabled");
    expect((await version(secret.id, "2")).status).toBe("enabled");
    expect((await sealed(secret.id, 1))?.ciphertext).not.toBeNull();
    const after = await secretOf(secret.id);
    expect(etagOf(after)).not.toBe(etagOf(before));
    expect(after.versionCount).toBe(2);
    expect(await secretOf(plain.id)).toEqual(plain);
    // Done once: a second pass finds nothing.
    expect(await sweep(WEEK)).toEqual(nothing);

    await enableVersion(domain, caller, ref(secret.id, "1"));
    const read = await accessVersion(domain, caller, {
      region: "",
      secretId: secret.id,
      revision: "1",
    });
    expect(textOf(read.data)).toBe("one");
  });

  it("destroys expired versions whose action is delete, leaving a tombstone", async () => {
    const ephemeral = { ttlMs: HOUR, expiresOnceAccessed: false, action: "delete" } as const;
    const { secret } = await newSecret(domain, { ephemeralPolicy: ephemeral }, "one");
    await expireNow(dbs.db(), secret.id, 1);

    expect(await sweep(WEEK)).toEqual({ ...nothing, expired: 1 });
    const tombstone = await version(secret.id, "1");
    expect(tombstone.status).toBe("deleted");
    expect(tombstone.deletedAt).toBeInstanceOf(Date);
    expect(await sealed(secret.id, 1)).toEqual(destroyed);
    expect((await secretOf(secret.id)).versionCount).toBe(0);
    await expectDomainError(
      accessVersion(domain, caller, { region: "", secretId: secret.id, revision: "1" }),
      "failed_precondition",
      "is destroyed: its payload is gone for good",
    );
    expect((await addVersion(domain, secret.id, "two")).revision).toBe(2);
  });

  it("destroys versions only after the deletion window, and never gives their revisions again", async () => {
    const { secret } = await newSecret(domain, {}, "one");
    await addVersion(domain, secret.id, "two");
    await addVersion(domain, secret.id, "three");
    await deleteVersion(domain, caller, ref(secret.id, "2"));
    await deleteVersion(domain, caller, ref(secret.id, "3"));

    expect(await sweep(HOUR)).toEqual(nothing);
    expect((await version(secret.id, "3")).status).toBe("scheduled_for_deletion");
    expect((await restoreVersion(domain, caller, ref(secret.id, "3"))).status).toBe("disabled");
    await deleteVersion(domain, caller, ref(secret.id, "3"));

    expect(await sweep(0)).toEqual({ ...nothing, versionsDestroyed: 2 });
    for (const revision of [2, 3]) {
      const tombstone = await version(secret.id, String(revision));
      expect(tombstone).toMatchObject({ status: "deleted" });
      expect(tombstone.deletedAt).toBeInstanceOf(Date);
      expect(await sealed(secret.id, revision)).toEqual(destroyed);
    }
    expect((await secretOf(secret.id)).versionCount).toBe(1);
    const listed = await listVersions(domain, caller, {
      region: "",
      secretId: secret.id,
      statuses: ["deleted"],
      page: 0,
      pageSize: 0,
    });
    expect(listed.versions.map((v) => v.revision)).toEqual([3, 2]);
    await expectDomainError(
      restoreVersion(domain, caller, ref(secret.id, "3")),
      "failed_precondition",
      "is destroyed, so there is nothing to restore",
    );
    await expectDomainError(
      enableVersion(domain, caller, ref(secret.id, "2")),
      "failed_precondition",
      "is destroyed: its payload is gone for good",
    );
    await expectDomainError(
      accessVersion(domain, caller, { region: "", secretId: secret.id, revision: "3" }),
      "failed_precondition",
      "is destroyed",
    );
    // The highest revision is still 3, destroyed; the next one is 4.
    expect(await version(secret.id, "latest")).toMatchObject({ revision: 3, status: "deleted" });
    const next = await addVersion(domain, secret.id, "four");
    expect(next.revision).toBe(4);
    const read = await accessVersion(domain, caller, {
      region: "",
      secretId: secret.id,
      revision: "latest",
    });
    expect(textOf(read.data)).toBe("four");
  });

  it("destroys a secret scheduled for deletion after the window, with its versions", async () => {
    const { secret } = await newSecret(domain, {}, "one");
    await addVersion(domain, secret.id, "two");
    await deleteSecret(domain, caller, { region: "", secretId: secret.id, etag: "" });

    expect(await sweep(HOUR)).toEqual(nothing);
    expect((await secretOf(secret.id)).deletionRequestedAt).not.toBeNull();

    expect(await sweep(0)).toEqual({ ...nothing, secretsDestroyed: 1 });
    await expectDomainError(secretOf(secret.id), "not_found", `secret ${secret.id} not found`);
    await expectDomainError(
      restoreSecret(domain, caller, { region: "", secretId: secret.id }),
      "not_found",
    );
    const rows = await query(
      dbs.db(),
      sql`select revision from secret_versions where secret_id = ${secret.id}`,
    );
    expect(rows).toEqual([]);
  });

  it("runs in the background with the domain's deletion window", async () => {
    const { secret } = await newSecret(domain, {}, "one");
    await deleteSecret(domain, caller, { region: "", secretId: secret.id, etag: "" });
    const swept: SweepCounts[] = [];
    const errors: unknown[] = [];
    const immediate = testDomain({ "test-region": dbs.database() }, { deletionWindowMs: 0 });
    const stop = startSweeper(
      immediate,
      HOUR,
      (_region, err) => errors.push(err),
      (_region, counts) => swept.push(counts),
    );
    await stop();
    expect(errors).toEqual([]);
    expect(swept).toEqual([{ ...nothing, secretsDestroyed: 1 }]);
    await expectDomainError(secretOf(secret.id), "not_found");
  });

  it("refuses to restore past the deletion window, even before the sweeper runs", async () => {
    const closed = testDomain({ "test-region": dbs.database() }, { deletionWindowMs: 0 });
    const { secret } = await newSecret(closed, {}, "one");
    await addVersion(closed, secret.id, "two");
    await deleteVersion(closed, caller, ref(secret.id, "1"));
    await expectDomainError(
      restoreVersion(closed, caller, ref(secret.id, "1")),
      "failed_precondition",
      "restore window",
    );
    await deleteSecret(closed, caller, { region: "", secretId: secret.id, etag: "" });
    await expectDomainError(
      restoreSecret(closed, caller, { region: "", secretId: secret.id }),
      "failed_precondition",
      "restore window",
    );
  });

  it("acts once on each row when two sweeps run at the same time", async () => {
    const ids = async <T>(n: number, make: (i: number) => Promise<T>) =>
      Promise.all(Array.from({ length: n }, (_, i) => make(i)));
    const expiring = await ids(40, async (i) => {
      const action = i % 2 === 0 ? "delete" : "disable";
      const { secret } = await newSecret(domain, {
        ephemeralPolicy: { ttlMs: HOUR, expiresOnceAccessed: false, action },
      });
      return secret.id;
    });
    const withDeletedVersion = await ids(20, async () => {
      const { secret } = await newSecret(domain);
      await addVersion(domain, secret.id, "two");
      await deleteVersion(domain, caller, ref(secret.id, "1"));
      return secret.id;
    });
    const deleted = await ids(20, async () => {
      const { secret } = await newSecret(domain);
      await deleteSecret(domain, caller, { region: "", secretId: secret.id, etag: "" });
      return secret.id;
    });
    await dbs
      .db()
      .update(secretVersions)
      .set({ expiresAt: sql`now() - interval '1 second'` })
      .where(inArray(secretVersions.secretId, expiring));
    const generations = async (secretIds: string[]) =>
      new Map(
        (
          await dbs
            .db()
            .select({ id: secrets.id, generation: secrets.generation })
            .from(secrets)
            .where(inArray(secrets.id, secretIds))
        ).map((r) => [r.id, r.generation]),
      );
    const touched = [...expiring, ...withDeletedVersion];
    const before = await generations(touched);

    const [a, b] = await Promise.all([sweep(0), sweep(0)]);
    expect({
      expired: a.expired + b.expired,
      versionsDestroyed: a.versionsDestroyed + b.versionsDestroyed,
      secretsDestroyed: a.secretsDestroyed + b.secretsDestroyed,
    }).toEqual({ expired: 40, versionsDestroyed: 20, secretsDestroyed: 20 });

    // Each secret's etag moved exactly once: no row was handled twice.
    const after = await generations(touched);
    for (const id of touched) expect(after.get(id)).toBe((before.get(id) ?? 0) + 1);
    const statuses = await dbs
      .db()
      .select({ status: secretVersions.status, n: sql<number>`count(*)`.mapWith(Number) })
      .from(secretVersions)
      .where(inArray(secretVersions.secretId, expiring))
      .groupBy(secretVersions.status)
      .orderBy(secretVersions.status);
    expect(statuses).toEqual([
      { status: "deleted", n: 20 },
      { status: "disabled", n: 20 },
    ]);
    const left = await dbs
      .db()
      .select({ id: secrets.id })
      .from(secrets)
      .where(inArray(secrets.id, deleted));
    expect(left).toEqual([]);
    expect(await sweep(0)).toEqual(nothing);
  });
});
