import { randomBytes, randomUUID } from "node:crypto";
import { crc32 } from "node:zlib";
import { Errors } from "@scaleway/sdk-client";
import { afterAll, beforeAll, expect, it } from "vitest";
import { newToken, type ServerProcess } from "../support/server-process.ts";
import { type CompatServer, describeOnBackends, startCompatServer } from "./support/backends.ts";
import {
  type Admin,
  adminOf,
  createProject,
  createScalewayKey,
  createToken,
  Role,
} from "./support/coffer.ts";
import { base64, refusal, type ScalewaySecrets, scalewaySecrets } from "./support/scaleway.ts";

/**
 * Coffer's refusals as the Scaleway SDK raises them: each error class of
 * `@scaleway/sdk-client` a Scaleway user catches, with the fields it reads
 * (the resource and its id, the precondition, the argument's name, the
 * authentication's reason, the rate limit's reset), for requests the real
 * SDK sends.
 */

/** The names of the arguments an InvalidArgumentsError refuses. */
async function refusedArguments(promise: Promise<unknown>): Promise<string[]> {
  const err = await refusal(promise);
  expect(err).toBeInstanceOf(Errors.InvalidArgumentsError);
  expect((err as Errors.ScalewayError).status).toBe(400);
  return (err as Errors.InvalidArgumentsError).details.map((d) => d.argumentName);
}

describeOnBackends("Scaleway SDK: refusals", (backend) => {
  let coffer: CompatServer | undefined;
  let limited: CompatServer | undefined;
  let server: ServerProcess;
  let admin: Admin;
  let api: ScalewaySecrets;
  let projectId = "";
  let secretId = "";

  beforeAll(async () => {
    // The rate-limited server starts beside the main one: one token's
    // second call in a second is already over its limit.
    const started = await Promise.allSettled([
      startCompatServer(backend, "errors", { COFFER_MAX_VERSIONS_PER_SECRET: "3" }),
      startCompatServer(backend, "rate-limit", { COFFER_RATE_LIMIT_RPS: "1" }),
    ]);
    const [main, slow] = started;
    if (main.status === "fulfilled") coffer = main.value;
    if (slow.status === "fulfilled") limited = slow.value;
    for (const s of started) if (s.status === "rejected") throw s.reason;
    server = (coffer as CompatServer).server;
    admin = adminOf(server);
    projectId = await createProject(admin);
    const key = await createScalewayKey(admin, projectId, Role.FULL_ACCESS);
    api = scalewaySecrets(server, key, projectId);
    secretId = (await api.createSecret({ name: "target", path: "/errors", protected: false })).id;
    await api.createSecretVersion({ secretId, data: base64("payload") });
  });

  afterAll(async () => {
    await Promise.all([coffer?.stop(), limited?.stop()]);
  });

  it("ResourceNotFoundError names the secret that does not exist", async () => {
    const missing = randomUUID();
    const err = await refusal(api.getSecret({ secretId: missing }));
    expect(err).toBeInstanceOf(Errors.ResourceNotFoundError);
    expect(err).toMatchObject({ status: 404, resource: "secret", resourceId: missing });
    for (const call of [
      () => api.updateSecret({ secretId: missing, description: "x" }),
      () => api.deleteSecret({ secretId: missing }),
      () => api.protectSecret({ secretId: missing }),
      () => api.createSecretVersion({ secretId: missing, data: base64("x") }),
      () => api.accessSecretVersion({ secretId: missing, revision: "latest_enabled" }),
    ]) {
      expect(await refusal(call())).toMatchObject({ resource: "secret", resourceId: missing });
    }
  });

  it("ResourceNotFoundError names the version that does not exist", async () => {
    for (const call of [
      () => api.getSecretVersion({ secretId, revision: "9" }),
      () => api.accessSecretVersion({ secretId, revision: "9" }),
      () => api.enableSecretVersion({ secretId, revision: "9" }),
    ]) {
      const err = await refusal(call());
      expect(err).toBeInstanceOf(Errors.ResourceNotFoundError);
      expect(err).toMatchObject({ resource: "secret_version", resourceId: `${secretId}/9` });
    }
  });

  it("PreconditionFailedError protected_resource for deleting a protected secret", async () => {
    const { id } = await api.createSecret({ name: "guarded", path: "/errors", protected: true });
    const err = await refusal(api.deleteSecret({ secretId: id }));
    expect(err).toBeInstanceOf(Errors.PreconditionFailedError);
    expect(err).toMatchObject({ status: 412, precondition: "protected_resource" });
    expect((err as Errors.PreconditionFailedError).helpMessage).toMatch(/protected/);
    expect((await api.getSecret({ secretId: id })).deletionRequestedAt).toBeUndefined();
  });

  it("AlreadyExistsError for a second secret of the same name at the same path", async () => {
    await api.createSecret({ name: "twice", path: "/errors", protected: false });
    const err = await refusal(
      api.createSecret({ name: "twice", path: "/errors", protected: false }),
    );
    expect(err).toBeInstanceOf(Errors.AlreadyExistsError);
    expect(err).toMatchObject({ status: 409, resource: "secret" });
    expect((err as Errors.AlreadyExistsError).helpMessage).toContain("twice");
  });

  it("QuotasExceededError past the versions a secret may hold (COFFER_MAX_VERSIONS_PER_SECRET)", async () => {
    const { id } = await api.createSecret({ name: "full", path: "/errors", protected: false });
    for (let i = 0; i < 3; i++)
      await api.createSecretVersion({ secretId: id, data: base64(`${i}`) });
    const err = await refusal(api.createSecretVersion({ secretId: id, data: base64("one more") }));
    expect(err).toBeInstanceOf(Errors.QuotasExceededError);
    expect(err).toMatchObject({ status: 403 });
    expect((err as Errors.QuotasExceededError).list).toEqual([
      { resource: "secret_version", quota: 3, current: 3, scope: undefined },
    ]);
    expect((await api.getSecret({ secretId: id })).versionCount).toBe(3);
  });

  it("InvalidArgumentsError names a bad name, path, secret id and revision", async () => {
    expect(await refusal(api.getSecret({ secretId: "not-a-uuid" }))).toBeInstanceOf(
      Errors.InvalidArgumentsError,
    );
    expect(await refusedArguments(api.getSecret({ secretId: "not-a-uuid" }))).toEqual([
      "secret_id",
    ]);
    expect(
      await refusedArguments(api.createSecret({ name: "bad name!", protected: false })),
    ).toEqual(["name"]);
    expect(
      await refusedArguments(api.createSecret({ name: "ok", path: "no-slash", protected: false })),
    ).toEqual(["path"]);
    expect(await refusedArguments(api.getSecretVersion({ secretId, revision: "first" }))).toEqual([
      "revision",
    ]);
  });

  it("InvalidArgumentsError names region for a region this server does not serve", async () => {
    expect(await refusedArguments(api.getSecret({ secretId, region: "nl-ams" }))).toEqual([
      "region",
    ]);
  });

  it("InvalidArgumentsError names data for a payload that is not base64, and nothing is stored", async () => {
    expect(
      await refusedArguments(api.createSecretVersion({ secretId, data: "not base64!" })),
    ).toEqual(["data"]);
    expect((await api.getSecret({ secretId })).versionCount).toBe(1);
  });

  it("InvalidArgumentsError names data_crc32 when it is not the payload's CRC-32", async () => {
    const payload = randomBytes(16);
    expect(
      await refusedArguments(
        api.createSecretVersion({
          secretId,
          data: base64(payload),
          dataCrc32: (crc32(payload) + 1) % 2 ** 32,
        }),
      ),
    ).toEqual(["data_crc32"]);
    expect((await api.getSecret({ secretId })).versionCount).toBe(1);
  });

  it("InvalidArgumentsError names type for a secret type Coffer does not know", async () => {
    const unknownType = "password" as Parameters<ScalewaySecrets["createSecret"]>[0]["type"];
    expect(
      await refusedArguments(
        api.createSecret({ name: "typed", type: unknownType, protected: false }),
      ),
    ).toEqual(["type"]);
  });

  it("PermissionsDeniedError for a read_only token writing or reading a payload", async () => {
    const readOnly = await createScalewayKey(admin, projectId, Role.READ_ONLY);
    const reader = scalewaySecrets(server, readOnly, projectId);
    // What it may do, it does.
    expect((await reader.getSecret({ secretId })).id).toBe(secretId);

    const write = await refusal(reader.createSecret({ name: "nope", protected: false }));
    expect(write).toBeInstanceOf(Errors.PermissionsDeniedError);
    expect(write).toMatchObject({ status: 403 });
    expect((write as Errors.PermissionsDeniedError).list).toEqual([
      { resource: "secret", action: "write" },
    ]);
    const access = await refusal(reader.accessSecretVersion({ secretId, revision: "1" }));
    expect(access).toBeInstanceOf(Errors.PermissionsDeniedError);
    expect((access as Errors.PermissionsDeniedError).list).toEqual([
      { resource: "secret_version", action: "read" },
    ]);
    const protect = await refusal(reader.protectSecret({ secretId }));
    expect(protect).toBeInstanceOf(Errors.PermissionsDeniedError);
    expect((await api.getSecret({ secretId })).protected).toBe(false);
  });

  it("a token of another project learns nothing: ResourceNotFoundError for the project and its secrets", async () => {
    const elsewhere = await createProject(admin);
    const outsider = await createScalewayKey(admin, elsewhere, Role.FULL_ACCESS);
    const other = scalewaySecrets(server, outsider, elsewhere);
    // Its grants do not reveal that a project or a secret exists outside them.
    const create = await refusal(other.createSecret({ projectId, name: "in", protected: false }));
    expect(create).toBeInstanceOf(Errors.ResourceNotFoundError);
    expect(create).toMatchObject({ resource: "project", resourceId: projectId });
    const list = await refusal(other.listSecrets({ projectId, scheduledForDeletion: false }));
    expect(list).toBeInstanceOf(Errors.ResourceNotFoundError);
    expect(list).toMatchObject({ resource: "project", resourceId: projectId });
    const get = await refusal(other.getSecret({ secretId }));
    expect(get).toBeInstanceOf(Errors.ResourceNotFoundError);
    expect(get).toMatchObject({ resource: "secret", resourceId: secretId });
  });

  it("DeniedAuthenticationError without a credential, and with an unknown or malformed one", async () => {
    const anonymous = await refusal(scalewaySecrets(server, undefined).getSecret({ secretId }));
    expect(anonymous).toBeInstanceOf(Errors.DeniedAuthenticationError);
    expect(anonymous).toMatchObject({ status: 401, reason: "invalid_argument" });

    // Well-formed, never issued: a Scaleway-style key and a Coffer token.
    const strangers = [
      scalewaySecrets(server, { accessKey: "SCW0123456789ABCDEFG", secretKey: randomUUID() }),
      scalewaySecrets(server, newToken()),
    ];
    for (const stranger of strangers) {
      const unknown = await refusal(stranger.getSecret({ secretId }));
      expect(unknown).toBeInstanceOf(Errors.DeniedAuthenticationError);
      expect(unknown).toMatchObject({ status: 401, reason: "not_found" });
    }

    const garbage = await refusal(scalewaySecrets(server, "garbage").getSecret({ secretId }));
    expect(garbage).toBeInstanceOf(Errors.DeniedAuthenticationError);
  });

  it("DeniedAuthenticationError once a key or a token is revoked", async () => {
    const key = await createScalewayKey(admin, projectId, Role.FULL_ACCESS);
    const token = await createToken(admin, projectId, Role.FULL_ACCESS);
    for (const { id, auth } of [
      { id: key.id, auth: key },
      { id: token.id, auth: token.value },
    ]) {
      const client = scalewaySecrets(server, auth, projectId);
      expect((await client.getSecret({ secretId })).id).toBe(secretId);
      await admin.revokeToken({ tokenId: id });
      const after = await refusal(client.getSecret({ secretId }));
      expect(after).toBeInstanceOf(Errors.DeniedAuthenticationError);
      expect(after).toMatchObject({ status: 401, reason: "not_found" });
    }
  });

  it("TooManyRequestsError past the token's rate limit, with when to retry", async () => {
    const slow = (limited as CompatServer).server;
    const slowAdmin = adminOf(slow);
    const project = await createProject(slowAdmin);
    const key = await createScalewayKey(slowAdmin, project, Role.FULL_ACCESS);
    const client = scalewaySecrets(slow, key, project);
    const started = performance.now();
    const outcomes = await Promise.allSettled(
      Array.from({ length: 8 }, () =>
        client.listSecrets({ projectId: project, scheduledForDeletion: false }),
      ),
    );
    const elapsedSeconds = (performance.now() - started) / 1000;
    const served = outcomes.filter((o) => o.status === "fulfilled").length;
    const refused = outcomes.flatMap((o) => (o.status === "rejected" ? [o.reason] : []));
    // A burst of twice the rate passes, then one call a second; the rest is refused.
    expect(served).toBeGreaterThanOrEqual(2);
    expect(served).toBeLessThanOrEqual(2 + Math.floor(elapsedSeconds));
    expect(refused).toHaveLength(8 - served);
    for (const err of refused) {
      expect(err).toBeInstanceOf(Errors.TooManyRequestsError);
      expect(err).toMatchObject({ status: 429 });
      expect((err as Errors.TooManyRequestsError).resetSeconds).toBeGreaterThanOrEqual(1);
    }
  });
});
