import { crc32 } from "node:zlib";
import { EphemeralAction, SecretStatus, SecretType, VersionStatus } from "@coffer/api";
import { Code, ConnectError } from "@connectrpc/connect";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents, tokens } from "../db/schema.ts";
import { createTestToken, memoryDatabase, PROJECT } from "../testing/backends.ts";
import type { Protocol, SecretClient } from "../testing/clients.ts";
import { type InMemoryServer, startInMemoryServer } from "../testing/in-memory-server.ts";
import { withLastCharChanged } from "../testing/tokens.ts";

const text = (s: string) => new TextEncoder().encode(s);

async function codeOf(p: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
  throw new Error("expected the call to fail");
}

// In memory: what the service answers, in each protocol (the transports
// have tests of their own, over ports).
let server: InMemoryServer;
let token: string;
beforeAll(async () => {
  server = await startInMemoryServer({
    regions: ["fr-par", "nl-ams"],
    databases: { "fr-par": memoryDatabase(), "nl-ams": memoryDatabase() },
  });
  token = (
    await createTestToken(server.server.domain, [{ projectId: "", role: "admin", pathPrefix: "/" }])
  ).value;
});
afterAll(() => server?.stop());

const protocols: Protocol[] = ["grpc", "connect", "grpc-web"];

describe.each(protocols)("SecretService over %s", (protocol) => {
  let coffer: SecretClient;
  let n = 0;
  const unique = () => `${protocol}-${++n}`;
  beforeAll(() => {
    coffer = server.client(protocol, token);
  });

  it("creates a secret with a first version and serves it with its checksum", async () => {
    const data = text(JSON.stringify({ user: "app", password: "pw-1" }));
    const { secret, firstVersion } = await coffer.createSecret({
      projectId: PROJECT,
      name: unique(),
      path: "/prod/",
      type: SecretType.KEY_VALUE,
      tags: ["b", "a", "b"],
      firstVersion: { data, dataCrc32: crc32(data) },
    });
    expect(secret?.path).toBe("/prod");
    expect(secret?.region).toBe("fr-par");
    expect(secret?.tags).toEqual(["a", "b"]);
    expect(secret?.status).toBe(SecretStatus.READY);
    expect(secret?.versionCount).toBe(1);
    expect(firstVersion?.status).toBe(VersionStatus.ENABLED);
    expect(firstVersion?.latest).toBe(true);
    const got = await coffer.accessSecretVersion({
      secretId: secret?.id ?? "",
      revision: "latest_enabled",
    });
    expect(Buffer.from(got.data).equals(Buffer.from(data))).toBe(true);
    expect(got.dataCrc32).toBe(crc32(data));
    expect(got.revision).toBe(1);
    expect(got.type).toBe(SecretType.KEY_VALUE);
  });

  it("refuses a payload that breaks its type with INVALID_ARGUMENT naming the field", async () => {
    const { secret } = await coffer.createSecret({
      projectId: PROJECT,
      name: unique(),
      type: SecretType.DATABASE_CREDENTIALS,
    });
    const err = await codeOf(
      coffer.createSecretVersion({
        secretId: secret?.id ?? "",
        data: text(
          JSON.stringify({
            engine: "postgres",
            username: "u",
            password: "p",
            host: "h",
            dbname: "d",
            port: "99999",
          }),
        ),
      }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.message).toMatch(/^data\.port: /);
  });

  it("answers each rule with its code and an actionable message", async () => {
    expect(await codeOf(coffer.createSecret({ projectId: PROJECT, name: ".." }))).toMatchObject({
      code: Code.InvalidArgument,
      message: expect.stringMatching(/^name: /),
    });
    expect(await codeOf(coffer.createSecret({ projectId: "nope", name: "x" }))).toMatchObject({
      code: Code.InvalidArgument,
      message: expect.stringMatching(/^project_id: /),
    });
    expect(
      await codeOf(coffer.createSecret({ projectId: PROJECT, name: "x", region: "mars" })),
    ).toMatchObject({
      code: Code.InvalidArgument,
      message: expect.stringContaining("fr-par, nl-ams"),
    });
    const name = unique();
    const { secret } = await coffer.createSecret({ projectId: PROJECT, name });
    const id = secret?.id ?? "";
    expect(await codeOf(coffer.createSecret({ projectId: PROJECT, name }))).toMatchObject({
      code: Code.AlreadyExists,
      message: expect.stringContaining(name),
    });
    // Another region is another database: the secret is not there.
    expect(await codeOf(coffer.getSecret({ secretId: id, region: "nl-ams" }))).toMatchObject({
      code: Code.NotFound,
    });
    expect(
      await codeOf(coffer.createSecretVersion({ secretId: id, data: text("x"), dataCrc32: 1234 })),
    ).toMatchObject({
      code: Code.InvalidArgument,
      message: expect.stringMatching(/^data_crc32: /),
    });
    expect(
      await codeOf(coffer.createSecretVersion({ secretId: id, data: new Uint8Array(65_537) })),
    ).toMatchObject({ code: Code.InvalidArgument, message: expect.stringMatching(/^data: /) });
    expect(
      await codeOf(coffer.updateSecret({ secretId: id, name: "y", etag: '"0"' })),
    ).toMatchObject({ code: Code.Aborted, message: expect.stringContaining("stale") });
    await coffer.protectSecret({ secretId: id });
    expect(await codeOf(coffer.deleteSecret({ secretId: id }))).toMatchObject({
      code: Code.FailedPrecondition,
      message: expect.stringContaining("secret is protected"),
    });
    expect(
      await codeOf(coffer.accessSecretVersion({ secretId: id, revision: "latest_enabled" })),
    ).toMatchObject({
      code: Code.NotFound,
      message: expect.stringContaining("no enabled version"),
    });
    expect(
      await codeOf(coffer.accessSecretVersion({ secretId: id, revision: "one" })),
    ).toMatchObject({ code: Code.InvalidArgument, message: expect.stringMatching(/^revision: /) });
  });

  it("reports a version past its 1 s time to live as disabled before the sweeper runs", async () => {
    // The test server sweeps once an hour: only the read-time status can say it.
    const { secret, firstVersion } = await coffer.createSecret({
      projectId: PROJECT,
      name: unique(),
      ephemeralPolicy: { timeToLive: { seconds: 1n, nanos: 0 }, action: EphemeralAction.DISABLE },
      firstVersion: { data: text("short-lived") },
    });
    const secretId = secret?.id ?? "";
    expect(firstVersion?.status).toBe(VersionStatus.ENABLED);
    await new Promise((r) => setTimeout(r, 1200));
    const got = await coffer.getSecretVersion({ secretId, revision: "1" });
    expect(got.version?.status).toBe(VersionStatus.DISABLED);
    const enabled = await coffer.listSecretVersions({ secretId, status: [VersionStatus.ENABLED] });
    expect(enabled.versions).toEqual([]);
    const disabled = await coffer.listSecretVersions({
      secretId,
      status: [VersionStatus.DISABLED],
    });
    expect(disabled.versions.map((v) => [v.revision, v.status])).toEqual([
      [1, VersionStatus.DISABLED],
    ]);
    expect((await codeOf(coffer.accessSecretVersion({ secretId, revision: "1" }))).message).toMatch(
      /expired at/,
    );
  });

  it("serves a single-access version once", async () => {
    const { secret } = await coffer.createSecret({
      projectId: PROJECT,
      name: unique(),
      ephemeralPolicy: { expiresOnceAccessed: true, action: EphemeralAction.DISABLE },
      firstVersion: { data: text("once") },
    });
    const id = secret?.id ?? "";
    const meta = await coffer.getSecretVersion({ secretId: id, revision: "1" });
    expect(meta.version?.ephemeralProperties?.expiresOnceAccessed).toBe(true);
    const got = await coffer.accessSecretVersion({ secretId: id, revision: "1" });
    expect(new TextDecoder().decode(got.data)).toBe("once");
    expect(await codeOf(coffer.accessSecretVersion({ secretId: id, revision: "1" }))).toMatchObject(
      { code: Code.FailedPrecondition, message: expect.stringContaining("already accessed") },
    );
  });

  it("refuses a call without a valid token, whatever the secret", async () => {
    for (const t of [undefined, "coffer_nope", withLastCharChanged(token)]) {
      const anonymous = server.client(protocol, t);
      expect(
        await codeOf(anonymous.getSecret({ secretId: "0f8fad5b-d9cb-469f-a165-70867728950e" })),
      ).toMatchObject({ code: Code.Unauthenticated, message: expect.stringContaining("Bearer") });
    }
  });

  it("echoes a request id and makes one up when none is sent", async () => {
    let seen: string | null = null;
    const traced = server.client(protocol, token);
    await traced.listSecretTypes(
      { projectId: PROJECT },
      { headers: { "x-request-id": "req-42" }, onHeader: (h) => (seen = h.get("x-request-id")) },
    );
    expect(seen).toBe("req-42");
    await traced.listSecretTypes(
      { projectId: PROJECT },
      { onHeader: (h) => (seen = h.get("x-request-id")) },
    );
    expect(seen).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("lists the server's regions, default first, to any valid token, and audits the call", async () => {
    const { domain } = server.server;
    const want = { regions: ["fr-par", "nl-ams"], defaultRegion: "fr-par" };
    const holders = [
      token,
      (await createTestToken(domain, [{ projectId: PROJECT, role: "read_only", pathPrefix: "/" }]))
        .value,
      (
        await createTestToken(domain, [
          { projectId: PROJECT, role: "secret_access", pathPrefix: "/app" },
        ])
      ).value,
    ];
    for (const [i, holder] of holders.entries()) {
      const requestId = `regions-${protocol}-${i}`;
      const got = await server
        .client(protocol, holder)
        .listRegions({}, { headers: { "x-request-id": requestId } });
      expect({ regions: got.regions, defaultRegion: got.defaultRegion }).toEqual(want);
      const events = await domain.regions
        .resolve("")
        .db.select()
        .from(auditEvents)
        .where(eq(auditEvents.requestId, requestId));
      expect(events.map((e) => [e.method, e.outcome])).toEqual([
        ["coffer.secretmanager.v1.SecretService/ListRegions", "OK"],
      ]);
    }

    const revoked = await createTestToken(domain, [
      { projectId: PROJECT, role: "read_only", pathPrefix: "/" },
    ]);
    await domain.regions
      .resolve("")
      .db.update(tokens)
      .set({ revokedAt: new Date() })
      .where(eq(tokens.id, revoked.id));
    for (const t of [undefined, revoked.value]) {
      expect((await codeOf(server.client(protocol, t).listRegions({}))).code).toBe(
        Code.Unauthenticated,
      );
    }
  });
});
