import { randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type CofferClient, type Secret, SecretType, type SecretVersion } from "@coffer/client";
import { Errors } from "@scaleway/sdk-client";
import type { Secretv1beta1 } from "@scaleway/sdk-secret";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  type CompatServer,
  describeOnBackends,
  REGION,
  startCompatServer,
} from "./support/backends.ts";
import {
  adminOf,
  cofferSecrets,
  createProject,
  createScalewayKey,
  Role,
} from "./support/coffer.ts";
import {
  base64,
  bytesOf,
  refusal,
  type ScalewaySecrets,
  scalewaySecrets,
} from "./support/scaleway.ts";

/**
 * One secret, two doors: what the Scaleway REST API writes, gRPC and
 * Connect read back identically (bytes and metadata, times to the
 * millisecond), and what Connect writes, the REST API reads back.
 */

/** Milliseconds since the epoch of a Coffer timestamp (undefined stays undefined). */
const millis = (t: Parameters<typeof timestampDate>[0] | undefined) =>
  t === undefined ? undefined : timestampDate(t).getTime();

/** Scaleway's name of a Coffer secret type: "SECRET_TYPE_KEY_VALUE" → "key_value". */
const typeName = (t: SecretType) => (SecretType[t] ?? "").toLowerCase();

/** The metadata both APIs show of a secret, in one shape, from Coffer's message. */
function fromCoffer(s: Secret | undefined) {
  if (s === undefined) throw new Error("no secret in the answer");
  return {
    id: s.id,
    projectId: s.projectId,
    region: s.region,
    name: s.name,
    path: s.path,
    description: s.description,
    tags: s.tags,
    type: typeName(s.type),
    protected: s.protected,
    versionCount: s.versionCount,
    createdAt: millis(s.createdAt),
    updatedAt: millis(s.updatedAt),
    timeToLive: s.ephemeralPolicy?.timeToLive?.seconds,
  };
}

/** The same shape from the Scaleway SDK's secret. */
function fromScaleway(s: Secretv1beta1.Secret) {
  const ttl = s.ephemeralPolicy?.timeToLive;
  return {
    id: s.id,
    projectId: s.projectId,
    region: s.region,
    name: s.name,
    path: s.path,
    description: s.description,
    tags: s.tags,
    type: s.type,
    protected: s.protected,
    versionCount: s.versionCount,
    createdAt: s.createdAt?.getTime(),
    updatedAt: s.updatedAt?.getTime(),
    timeToLive: ttl === undefined ? undefined : BigInt(ttl.replace(/s$/, "")),
  };
}

const versionFromCoffer = (v: SecretVersion | undefined) => ({
  revision: v?.revision,
  latest: v?.latest,
  description: v?.description,
  createdAt: millis(v?.createdAt),
});
const versionFromScaleway = (v: Secretv1beta1.SecretVersion) => ({
  revision: v.revision,
  latest: v.latest,
  description: v.description,
  createdAt: v.createdAt?.getTime(),
});

describeOnBackends("one secret over REST, gRPC and Connect", (backend) => {
  let coffer: CompatServer | undefined;
  let rest: ScalewaySecrets;
  let grpc: CofferClient;
  let connect: CofferClient;
  let projectId = "";

  beforeAll(async () => {
    coffer = await startCompatServer(backend, "cross");
    const admin = adminOf(coffer.server);
    projectId = await createProject(admin);
    // One key for every door: Coffer's own API takes its secret key as a bearer token.
    const key = await createScalewayKey(admin, projectId, Role.FULL_ACCESS);
    rest = scalewaySecrets(coffer.server, key, projectId);
    grpc = cofferSecrets(coffer.server, key.secretKey, "grpc");
    connect = cofferSecrets(coffer.server, key.secretKey, "connect");
  });

  afterAll(async () => {
    await coffer?.stop();
  });

  it("a secret created over REST reads the same over gRPC and Connect", async () => {
    const created = await rest.createSecret({
      name: "from-rest",
      path: "/cross/rest",
      tags: ["cross", "rest"],
      description: "written by the Scaleway SDK",
      type: "key_value",
      protected: true,
      ephemeralPolicy: { timeToLive: "86400s", action: "disable" },
    });
    const payload = Buffer.from(JSON.stringify({ key: randomBytes(12).toString("hex"), n: 7 }));
    await rest.createSecretVersion({ secretId: created.id, data: base64("{}") });
    const version = await rest.createSecretVersion({
      secretId: created.id,
      data: base64(payload),
      dataCrc32: crc32(payload),
      description: "second",
    });
    const secret = await rest.getSecret({ secretId: created.id });
    expect(secret.versionCount).toBe(2);

    for (const client of [grpc, connect]) {
      const read = await client.getSecret({ region: REGION, secretId: created.id });
      expect(fromCoffer(read.secret)).toEqual(fromScaleway(secret));
      const latest = await client.getSecretVersion({ secretId: created.id, revision: "latest" });
      expect(versionFromCoffer(latest.version)).toEqual(versionFromScaleway(version));
      expect(millis(latest.version?.ephemeralProperties?.expiresAt)).toBe(
        version.ephemeralProperties?.expiresAt?.getTime(),
      );
      const access = await client.accessSecretVersion({ secretId: created.id, revision: "2" });
      expect(Buffer.from(access.data).equals(payload)).toBe(true);
      expect(access.dataCrc32).toBe(crc32(payload));
      expect(typeName(access.type)).toBe("key_value");
    }
  });

  it("a secret created over Connect reads the same over REST", async () => {
    const payload = randomBytes(40);
    const created = await connect.createSecret({
      region: REGION,
      projectId,
      name: "from-connect",
      path: "/cross/connect",
      tags: ["connect", "cross"],
      description: "written by Coffer's client",
      type: SecretType.OPAQUE,
      protected: false,
      firstVersion: { data: payload, dataCrc32: crc32(payload), description: "first" },
    });
    const secretId = created.secret?.id ?? "";
    const { secret } = await grpc.getSecret({ secretId });

    const read = await rest.getSecret({ secretId });
    expect(fromScaleway(read)).toEqual(fromCoffer(secret));
    expect(read).toMatchObject({ status: "ready", keyId: null, managed: false, usedBy: [] });
    const version = await rest.getSecretVersion({ secretId, revision: "1" });
    expect(versionFromScaleway(version)).toEqual(versionFromCoffer(created.firstVersion));
    expect(version).toMatchObject({ secretId, status: "enabled", region: REGION });
    const listed = await rest.listSecretVersions({ secretId });
    expect(listed.versions.map(versionFromScaleway)).toEqual([
      versionFromCoffer(created.firstVersion),
    ]);

    const access = await rest.accessSecretVersion({ secretId, revision: "latest_enabled" });
    expect(access).toMatchObject({
      secretId,
      revision: 1,
      type: "opaque",
      dataCrc32: crc32(payload),
    });
    expect(bytesOf(access.data).equals(payload)).toBe(true);
    const byPath = await rest.accessSecretVersionByPath({
      secretPath: "/cross/connect",
      secretName: "from-connect",
      revision: "1",
    });
    expect(bytesOf(byPath.data).equals(payload)).toBe(true);
  });

  it("a change over one door is seen at the other: REST protects, Connect sees it; Connect disables, REST sees it", async () => {
    const created = await rest.createSecret({ name: "shared", path: "/cross", protected: false });
    await rest.createSecretVersion({ secretId: created.id, data: base64("shared") });
    const protectedOverRest = await rest.protectSecret({ secretId: created.id });
    const overConnect = await connect.getSecret({ secretId: created.id });
    expect(overConnect.secret?.protected).toBe(true);
    expect(millis(overConnect.secret?.updatedAt)).toBe(protectedOverRest.updatedAt?.getTime());

    await connect.disableSecretVersion({ secretId: created.id, revision: "1" });
    const overRest = await rest.getSecretVersion({ secretId: created.id, revision: "1" });
    expect(overRest.status).toBe("disabled");
  });

  it("a version destroyed over gRPC (Coffer's own DestroySecretVersion) reads deleted over REST", async () => {
    const created = await rest.createSecret({ name: "leaked", path: "/cross", protected: false });
    await rest.createSecretVersion({ secretId: created.id, data: base64("leaked credential") });
    // Destroying needs the admin role: the server's bootstrap token has it.
    const { server } = coffer as CompatServer;
    const asAdmin = cofferSecrets(server, server.token, "grpc");
    const { version } = await asAdmin.destroySecretVersion({ secretId: created.id, revision: "1" });

    const overRest = await rest.getSecretVersion({ secretId: created.id, revision: "1" });
    expect(overRest.status).toBe("deleted");
    expect(overRest.deletedAt?.getTime()).toBe(millis(version?.deletedAt));
    const listed = await rest.listSecretVersions({ secretId: created.id, status: ["deleted"] });
    expect(listed.versions.map((v) => [v.revision, v.status])).toEqual([[1, "deleted"]]);
    const err = await refusal(rest.accessSecretVersion({ secretId: created.id, revision: "1" }));
    expect(err).toBeInstanceOf(Errors.PreconditionFailedError);
    expect((err as Errors.PreconditionFailedError).helpMessage).toMatch(/destroyed/);
  });
});
