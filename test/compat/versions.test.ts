import { randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import { Errors } from "@scaleway/sdk-client";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  type CompatServer,
  describeOnBackends,
  REGION,
  startCompatServer,
} from "./support/backends.ts";
import { adminOf, createProject, createScalewayKey, Role } from "./support/coffer.ts";
import {
  base64,
  bytesOf,
  refusal,
  type ScalewaySecrets,
  scalewaySecrets,
} from "./support/scaleway.ts";

/**
 * The version endpoints of the Scaleway Secret Manager API, driven by the
 * real `@scaleway/sdk-secret` client against a coffer-server process:
 * writing payloads, reading them back byte for byte, and a version's life
 * (enabled, disabled, scheduled for deletion, restored).
 */

describeOnBackends("Scaleway SDK: versions", (backend) => {
  let coffer: CompatServer | undefined;
  let api: ScalewaySecrets;

  beforeAll(async () => {
    coffer = await startCompatServer(backend, "versions");
    const admin = adminOf(coffer.server);
    const projectId = await createProject(admin);
    const key = await createScalewayKey(admin, projectId, Role.FULL_ACCESS);
    api = scalewaySecrets(coffer.server, key, projectId);
  });

  afterAll(async () => {
    await coffer?.stop();
  });

  /** A new opaque secret's id, at `path`. */
  const newSecret = async (path: string, name = "s") =>
    (await api.createSecret({ name, path, protected: false })).id;

  it("createSecretVersion answers the version; accessSecretVersion gives the same bytes and CRC-32", async () => {
    const secretId = await newSecret("/create");
    const payload = randomBytes(48);
    const version = await api.createSecretVersion({
      secretId,
      data: base64(payload),
      dataCrc32: crc32(payload),
      description: "first",
    });
    expect(version).toMatchObject({
      secretId,
      revision: 1,
      status: "enabled",
      latest: true,
      description: "first",
      region: REGION,
      ephemeralProperties: undefined,
      deletedAt: undefined,
      deletionRequestedAt: undefined,
    });
    expect(version.createdAt).toBeInstanceOf(Date);

    const access = await api.accessSecretVersion({ secretId, revision: "1" });
    expect(access).toEqual({
      secretId,
      revision: 1,
      data: base64(payload),
      dataCrc32: crc32(payload),
      type: "opaque",
    });
    expect(bytesOf(access.data).equals(payload)).toBe(true);
    expect((await api.getSecret({ secretId })).versionCount).toBe(1);
  });

  it("accessSecretVersion resolves latest and latest_enabled to a revision", async () => {
    const secretId = await newSecret("/latest");
    await api.createSecretVersion({ secretId, data: base64("one") });
    await api.createSecretVersion({ secretId, data: base64("two") });
    await api.disableSecretVersion({ secretId, revision: "2" });

    const latest = await refusal(api.accessSecretVersion({ secretId, revision: "latest" }));
    expect(latest).toBeInstanceOf(Errors.PreconditionFailedError);
    const enabled = await api.accessSecretVersion({ secretId, revision: "latest_enabled" });
    expect(enabled.revision).toBe(1);
    expect(bytesOf(enabled.data).toString()).toBe("one");
  });

  it("createSecretVersion with disablePrevious disables the version before it", async () => {
    const secretId = await newSecret("/disable-previous");
    await api.createSecretVersion({ secretId, data: base64("old") });
    const second = await api.createSecretVersion({
      secretId,
      data: base64("new"),
      disablePrevious: true,
    });
    expect(second).toMatchObject({ revision: 2, status: "enabled", latest: true });
    const first = await api.getSecretVersion({ secretId, revision: "1" });
    expect(first).toMatchObject({ revision: 1, status: "disabled", latest: false });
  });

  it("getSecretVersion reads a version by number, latest and latest_enabled", async () => {
    const secretId = await newSecret("/get");
    const one = await api.createSecretVersion({ secretId, data: base64("1"), description: "a" });
    const two = await api.createSecretVersion({ secretId, data: base64("2"), description: "b" });
    await api.disableSecretVersion({ secretId, revision: "2" });
    expect(await api.getSecretVersion({ secretId, revision: "1" })).toEqual({
      ...one,
      latest: false,
    });
    expect(await api.getSecretVersion({ secretId, revision: "latest" })).toMatchObject({
      revision: 2,
      description: "b",
      status: "disabled",
      createdAt: two.createdAt,
    });
    expect(await api.getSecretVersion({ secretId, revision: "latest_enabled" })).toEqual({
      ...one,
      latest: false,
    });
  });

  it("updateSecretVersion changes the description and the ephemeral properties", async () => {
    // Coffer gives a version ephemeral properties only under its secret's ephemeral policy.
    const { id: secretId } = await api.createSecret({
      name: "s",
      path: "/update",
      protected: false,
      ephemeralPolicy: { timeToLive: "86400s", action: "disable" },
    });
    await api.createSecretVersion({ secretId, data: base64("x"), description: "before" });
    const described = await api.updateSecretVersion({
      secretId,
      revision: "1",
      description: "after",
    });
    expect(described).toMatchObject({ revision: 1, description: "after", status: "enabled" });

    const expiresAt = new Date(Date.now() + 3_600_000);
    expiresAt.setMilliseconds(0);
    const expiring = await api.updateSecretVersion({
      secretId,
      revision: "1",
      ephemeralProperties: { expiresAt, expiresOnceAccessed: false, action: "disable" },
    });
    expect(expiring.ephemeralProperties).toEqual({
      expiresAt,
      expiresOnceAccessed: false,
      action: "disable",
    });
    expect(await api.getSecretVersion({ secretId, revision: "1" })).toEqual(expiring);
    expect(expiring.description).toBe("after");
  });

  it("disableSecretVersion stops accesses and enableSecretVersion allows them again", async () => {
    const secretId = await newSecret("/toggle");
    await api.createSecretVersion({ secretId, data: base64("toggled") });
    const disabled = await api.disableSecretVersion({ secretId, revision: "1" });
    expect(disabled).toMatchObject({ revision: 1, status: "disabled" });
    const err = await refusal(api.accessSecretVersion({ secretId, revision: "1" }));
    expect(err).toBeInstanceOf(Errors.PreconditionFailedError);
    expect((err as Errors.PreconditionFailedError).helpMessage).toContain("disabled");

    const enabled = await api.enableSecretVersion({ secretId, revision: "1" });
    expect(enabled).toMatchObject({ revision: 1, status: "enabled" });
    const access = await api.accessSecretVersion({ secretId, revision: "1" });
    expect(bytesOf(access.data).toString()).toBe("toggled");
  });

  it("deleteSecretVersion schedules the version for deletion; restoreSecretVersion brings it back disabled", async () => {
    const secretId = await newSecret("/delete-version");
    await api.createSecretVersion({ secretId, data: base64("kept") });
    await api.createSecretVersion({ secretId, data: base64("dropped") });
    expect(await api.deleteSecretVersion({ secretId, revision: "2" })).toBeUndefined();

    const deleted = await api.getSecretVersion({ secretId, revision: "2" });
    expect(deleted.status).toBe("scheduled_for_deletion");
    expect(deleted.deletionRequestedAt).toBeInstanceOf(Date);
    const err = await refusal(api.accessSecretVersion({ secretId, revision: "2" }));
    expect(err).toBeInstanceOf(Errors.PreconditionFailedError);
    const listed = await api.listSecretVersions({ secretId });
    expect(listed.versions.map((v) => [v.revision, v.status])).toEqual([[1, "enabled"]]);

    const restored = await api.restoreSecretVersion({ secretId, revision: "2" });
    expect(restored).toMatchObject({
      revision: 2,
      status: "disabled",
      deletionRequestedAt: undefined,
    });
    await api.enableSecretVersion({ secretId, revision: "2" });
    const access = await api.accessSecretVersion({ secretId, revision: "2" });
    expect(bytesOf(access.data).toString()).toBe("dropped");
  });

  it("listSecretVersions filters by status, and .all() over 10 versions in pages of 3 returns each once", async () => {
    const secretId = await newSecret("/list-versions");
    for (let i = 1; i <= 10; i++) {
      await api.createSecretVersion({ secretId, data: base64(`v${i}`) });
    }
    for (const revision of ["2", "5", "7"]) await api.disableSecretVersion({ secretId, revision });

    const first = await api.listSecretVersions({ secretId, pageSize: 3 });
    expect(first.totalCount).toBe(10);
    expect(first.versions).toHaveLength(3);
    const all = await api.listSecretVersions({ secretId, pageSize: 3 }).all();
    expect(all.map((v) => v.revision).sort((a, b) => a - b)).toEqual([
      1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
    ]);
    expect(all.filter((v) => v.latest).map((v) => v.revision)).toEqual([10]);

    const disabled = await api.listSecretVersions({ secretId, status: ["disabled"] });
    expect(disabled.totalCount).toBe(3);
    expect(disabled.versions.map((v) => v.revision).sort((a, b) => a - b)).toEqual([2, 5, 7]);
    const both = await api
      .listSecretVersions({ secretId, status: ["enabled", "disabled"], pageSize: 4 })
      .all();
    expect(both).toHaveLength(10);
  });

  it("accessSecretVersionByPath finds the secret by project, path and name", async () => {
    const secretId = await newSecret("/by-path/app", "token");
    const payload = randomBytes(32);
    await api.createSecretVersion({ secretId, data: base64(payload) });
    const access = await api.accessSecretVersionByPath({
      secretPath: "/by-path/app",
      secretName: "token",
      revision: "latest_enabled",
    });
    expect(access).toMatchObject({ secretId, revision: 1, type: "opaque" });
    expect(bytesOf(access.data).equals(payload)).toBe(true);
    expect(access.dataCrc32).toBe(crc32(payload));

    const err = await refusal(
      api.accessSecretVersionByPath({
        secretPath: "/by-path/app",
        secretName: "missing",
        revision: "latest_enabled",
      }),
    );
    expect(err).toBeInstanceOf(Errors.ResourceNotFoundError);
    expect(err).toMatchObject({ resource: "secret", resourceId: "/by-path/app/missing" });
  });
});
