import { randomBytes } from "node:crypto";
import { Errors } from "@scaleway/sdk-client";
import type { Secretv1beta1 } from "@scaleway/sdk-secret";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  type CompatServer,
  describeOnBackends,
  REGION,
  startCompatServer,
} from "./support/backends.ts";
import { type Admin, adminOf, createProject, createScalewayKey, Role } from "./support/coffer.ts";
import {
  base64,
  bytesOf,
  refusal,
  type ScalewaySecrets,
  scalewaySecrets,
} from "./support/scaleway.ts";

/**
 * Ephemeral policies through the Scaleway SDK: the time to live's bounds,
 * a version expiring, and single access (`expires_once_accessed`) served
 * exactly once, also when 50 REST calls race for it, as the audit trail
 * then shows.
 */

const ACCESS_METHOD = "coffer.secretmanager.v1.SecretService/AccessSecretVersion";

/** The names of the arguments an InvalidArgumentsError refuses. */
async function refusedArguments(promise: Promise<unknown>): Promise<string[]> {
  const err = await refusal(promise);
  expect(err).toBeInstanceOf(Errors.InvalidArgumentsError);
  return (err as Errors.InvalidArgumentsError).details.map((d) => d.argumentName);
}

describeOnBackends("Scaleway SDK: ephemeral policies", (backend) => {
  let coffer: CompatServer | undefined;
  let admin: Admin;
  let api: ScalewaySecrets;
  let projectId = "";

  beforeAll(async () => {
    coffer = await startCompatServer(backend, "ephemeral");
    admin = adminOf(coffer.server);
    projectId = await createProject(admin);
    const key = await createScalewayKey(admin, projectId, Role.FULL_ACCESS);
    api = scalewaySecrets(coffer.server, key, projectId);
  });

  afterAll(async () => {
    await coffer?.stop();
  });

  const ephemeral = (name: string, ephemeralPolicy: Secretv1beta1.EphemeralPolicy) =>
    api.createSecret({ name, path: "/ephemeral", protected: false, ephemeralPolicy });

  it("time_to_live is taken from one second to 365 days, and refused outside, naming it", async () => {
    const shortest = await ephemeral("ttl-1s", { timeToLive: "1s", action: "disable" });
    expect(shortest.ephemeralPolicy).toEqual({
      timeToLive: "1s",
      expiresOnceAccessed: false,
      action: "disable",
    });
    // The Go SDK writes a duration with nine decimals; the answer is protobuf JSON.
    const longest = await ephemeral("ttl-365d", {
      timeToLive: "31536000.000000000s",
      action: "delete",
    });
    expect(longest.ephemeralPolicy?.timeToLive).toBe("31536000s");

    const field = "ephemeral_policy.time_to_live";
    for (const timeToLive of ["0s", "0.999s", "31536001s"]) {
      expect(
        await refusedArguments(ephemeral(`ttl-${timeToLive}`, { timeToLive, action: "disable" })),
      ).toEqual([field]);
    }
    expect(
      await refusedArguments(
        api.updateSecret({
          secretId: shortest.id,
          ephemeralPolicy: { timeToLive: "31536001s", action: "disable" },
        }),
      ),
    ).toEqual([field]);
    expect(
      await refusedArguments(ephemeral("ttl-words", { timeToLive: "an hour", action: "disable" })),
    ).toEqual([field]);
    // Nothing refused was created.
    const listed = await api.listSecrets({
      projectId,
      path: "/ephemeral",
      scheduledForDeletion: false,
    });
    expect(listed.secrets.map((s) => s.name).sort()).toEqual(["ttl-1s", "ttl-365d"]);
  });

  it("updateSecret changes an ephemeral policy, as Scaleway's recorded exchange does (1800s/disable to 18000s/delete)", async () => {
    const secret = await ephemeral("changed-policy", {
      timeToLive: "1800.000000000s",
      action: "disable",
    });
    expect(secret.ephemeralPolicy).toEqual({
      timeToLive: "1800s",
      expiresOnceAccessed: false,
      action: "disable",
    });
    const updated = await api.updateSecret({
      secretId: secret.id,
      ephemeralPolicy: { timeToLive: "18000s", action: "delete" },
    });
    expect(updated.ephemeralPolicy).toEqual({
      timeToLive: "18000s",
      expiresOnceAccessed: false,
      action: "delete",
    });
    expect((await api.getSecret({ secretId: secret.id })).ephemeralPolicy).toEqual(
      updated.ephemeralPolicy,
    );
  });

  it("a version with a time to live expires: its action disables it", async () => {
    const secret = await ephemeral("expiring", { timeToLive: "1s", action: "disable" });
    const created = await api.createSecretVersion({ secretId: secret.id, data: base64("brief") });
    const expiresAt = created.ephemeralProperties?.expiresAt;
    expect(expiresAt).toBeInstanceOf(Date);
    expect((expiresAt as Date).getTime() - (created.createdAt as Date).getTime()).toBe(1_000);

    await new Promise((resolve) =>
      setTimeout(resolve, (expiresAt as Date).getTime() - Date.now() + 200),
    );
    const err = await refusal(api.accessSecretVersion({ secretId: secret.id, revision: "1" }));
    expect(err).toBeInstanceOf(Errors.PreconditionFailedError);
    expect((err as Errors.PreconditionFailedError).helpMessage).toMatch(/expired/);
    const version = await api.getSecretVersion({ secretId: secret.id, revision: "1" });
    expect(version.status).toBe("disabled");
  });

  it("expires_once_accessed: the payload is served once over REST, then refused", async () => {
    const secret = await ephemeral("once", { expiresOnceAccessed: true, action: "disable" });
    expect(secret.ephemeralPolicy).toMatchObject({ expiresOnceAccessed: true, action: "disable" });
    const payload = randomBytes(24);
    const version = await api.createSecretVersion({ secretId: secret.id, data: base64(payload) });
    expect(version.ephemeralProperties).toMatchObject({
      expiresOnceAccessed: true,
      action: "disable",
    });

    const first = await api.accessSecretVersion({ secretId: secret.id, revision: "latest" });
    expect(bytesOf(first.data).equals(payload)).toBe(true);
    const second = await refusal(api.accessSecretVersion({ secretId: secret.id, revision: "1" }));
    expect(second).toBeInstanceOf(Errors.PreconditionFailedError);
    expect((second as Errors.PreconditionFailedError).helpMessage).toMatch(/already accessed/);
    expect(JSON.stringify((second as Errors.ScalewayError).body)).not.toContain(base64(payload));
    const byPath = await refusal(
      api.accessSecretVersionByPath({
        secretPath: "/ephemeral",
        secretName: "once",
        revision: "1",
      }),
    );
    expect(byPath).toBeInstanceOf(Errors.PreconditionFailedError);
  });

  it("expires_once_accessed with action delete: once served, the version reads deleted", async () => {
    const secret = await ephemeral("burn", { expiresOnceAccessed: true, action: "delete" });
    await api.createSecretVersion({ secretId: secret.id, data: base64("burn after reading") });
    const served = await api.accessSecretVersion({ secretId: secret.id, revision: "1" });
    expect(bytesOf(served.data).toString()).toBe("burn after reading");
    const version = await api.getSecretVersion({ secretId: secret.id, revision: "1" });
    expect(version.status).toBe("deleted");
    expect(version.deletedAt).toBeInstanceOf(Date);
    const err = await refusal(api.accessSecretVersion({ secretId: secret.id, revision: "1" }));
    expect(err).toBeInstanceOf(Errors.PreconditionFailedError);
  });

  it("updateSecretVersion cannot turn single access off: the version is still served only once", async () => {
    const secret = await ephemeral("tightened", { expiresOnceAccessed: true, action: "disable" });
    await api.createSecretVersion({ secretId: secret.id, data: base64("once only") });
    const err = await refusal(
      api.updateSecretVersion({
        secretId: secret.id,
        revision: "1",
        ephemeralProperties: {
          expiresAt: new Date(Date.now() + 3_600_000),
          expiresOnceAccessed: false,
          action: "disable",
        },
      }),
    );
    expect(err).toBeInstanceOf(Errors.PreconditionFailedError);
    expect((err as Errors.PreconditionFailedError).helpMessage).toMatch(/single-access/);
    const version = await api.getSecretVersion({ secretId: secret.id, revision: "1" });
    expect(version.ephemeralProperties?.expiresOnceAccessed).toBe(true);
    await api.accessSecretVersion({ secretId: secret.id, revision: "1" });
    expect(
      await refusal(api.accessSecretVersion({ secretId: secret.id, revision: "1" })),
    ).toBeInstanceOf(Errors.PreconditionFailedError);
  });

  it("50 concurrent REST accesses to a single-access version: one gets the payload, 49 are refused, as audited", async () => {
    const secret = await ephemeral("raced", { expiresOnceAccessed: true, action: "disable" });
    const payload = randomBytes(32);
    await api.createSecretVersion({ secretId: secret.id, data: base64(payload) });

    const outcomes = await Promise.allSettled(
      Array.from({ length: 50 }, () =>
        api.accessSecretVersion({ secretId: secret.id, revision: "1" }),
      ),
    );
    const served = outcomes.flatMap((o) => (o.status === "fulfilled" ? [o.value] : []));
    const refused = outcomes.flatMap((o) => (o.status === "rejected" ? [o.reason] : []));
    expect(served).toHaveLength(1);
    expect(bytesOf(served[0]?.data ?? "").equals(payload)).toBe(true);
    expect(refused).toHaveLength(49);
    for (const err of refused) {
      expect(err).toBeInstanceOf(Errors.PreconditionFailedError);
      expect(err).toMatchObject({ status: 412 });
    }

    const { events } = await admin.listAuditEvents({
      region: REGION,
      secretId: secret.id,
      method: ACCESS_METHOD,
      pageSize: 100,
    });
    const outcomesAudited: Record<string, number> = {};
    for (const event of events) {
      outcomesAudited[event.outcome] = (outcomesAudited[event.outcome] ?? 0) + event.count;
      expect(event.revision).toBe(1);
    }
    expect(outcomesAudited).toEqual({ OK: 1, FAILED_PRECONDITION: 49 });
  });
});
