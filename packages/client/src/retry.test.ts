import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { AdminService, SecretService } from "@coffer/api";
import { type CallOptions, Code, ConnectError, createClient } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { accessSecret } from "./access.ts";
import { cofferInterceptors } from "./coffer.ts";
import {
  answer,
  createFake,
  type FakeOptions,
  SECRET_ID,
  unavailableFirst,
} from "./fake-coffer.ts";
import { createCoffer, createCofferClient } from "./index.ts";
import { isRetrySafe, type RetryEvent, type RetryOptions } from "./retry.ts";

/** Fast retries for tests: 1-2 ms apart. */
const FAST: RetryOptions = { initialDelayMs: 2, maxDelayMs: 2 };

type AnyMethod = (req: object, options?: CallOptions) => Promise<unknown>;

/** A client of `service` over the fake, with retries. */
function clientOf(
  service: typeof SecretService | typeof AdminService,
  fake: ReturnType<typeof createFake>,
  retry: RetryOptions | boolean = FAST,
) {
  const client = createClient(service, fake.transport(cofferInterceptors({ retry })));
  return client as unknown as Record<string, AnyMethod>;
}

/**
 * The rule, method by method: which calls are sent again after UNAVAILABLE.
 * A method missing here (a new RPC) fails the test: it needs a decision.
 */
const RETRIED: Record<string, Record<string, boolean>> = {
  [SecretService.typeName]: {
    GetSecret: true,
    ListSecrets: true,
    BrowseSecrets: true,
    ListTags: true,
    ListSecretTypes: true,
    ListRegions: true,
    GetSecretVersion: true,
    ListSecretVersions: true,
    CreateSecret: false,
    UpdateSecret: false,
    DeleteSecret: false,
    RestoreSecret: false,
    ProtectSecret: false,
    UnprotectSecret: false,
    CreateSecretVersion: false,
    UpdateSecretVersion: false,
    EnableSecretVersion: false,
    DisableSecretVersion: false,
    DeleteSecretVersion: false,
    RestoreSecretVersion: false,
    DestroySecretVersion: false,
    // Consuming accesses: see the no_consume cases below.
    AccessSecretVersion: false,
    AccessSecretVersionByPath: false,
  },
  [AdminService.typeName]: {
    ListProjects: true,
    ListTokens: true,
    ListAuditEvents: true,
    GetCaller: true,
    CreateProject: false,
    UpdateProject: false,
    DeleteProject: false,
    CreateToken: false,
    RevokeToken: false,
    RotateMasterKey: false,
    ListTrustedIssuers: true,
    ListIdentityBindings: true,
    CreateTrustedIssuer: false,
    UpdateTrustedIssuer: false,
    DeleteTrustedIssuer: false,
    CreateIdentityBinding: false,
    DeleteIdentityBinding: false,
  },
};

describe("retries", () => {
  for (const service of [SecretService, AdminService]) {
    for (const method of service.methods.filter((m) => m.methodKind === "unary")) {
      const retried = RETRIED[service.typeName]?.[method.name];
      it(`${method.name}: ${retried ? "retried" : "sent once"} after UNAVAILABLE`, async () => {
        expect(retried, `no retry decision for ${method.name}`).toBeTypeOf("boolean");
        const fake = createFake({ fault: unavailableFirst(2) });
        const call = clientOf(service, fake)[method.localName] as AnyMethod;
        if (retried) {
          await expect(call({})).resolves.toBeDefined();
          expect(fake.count(method.name)).toBe(3);
        } else {
          await expect(call({})).rejects.toMatchObject({ code: Code.Unavailable });
          expect(fake.count(method.name)).toBe(1);
        }
      });
    }
  }

  it("takes its reads from the proto: retried exactly when marked NO_SIDE_EFFECTS, accesses aside", () => {
    for (const service of [SecretService, AdminService]) {
      for (const method of service.methods.filter((m) => m.methodKind === "unary")) {
        const marked = method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS;
        expect(marked, `${method.name} marked NO_SIDE_EFFECTS`).toBe(
          RETRIED[service.typeName]?.[method.name],
        );
        expect(isRetrySafe(method, {})).toBe(marked);
      }
    }
  });

  it("decides by the method descriptor's mark, not by the method's name", () => {
    const create = SecretService.method.createSecret;
    const get = SecretService.method.getSecret;
    const marked = { ...create, idempotency: MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS };
    const unmarked = { ...get, idempotency: MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN };
    expect(isRetrySafe(marked, {})).toBe(true);
    expect(isRetrySafe(unmarked, {})).toBe(false);
    // The accesses are unmarked; no_consume decides, per request.
    const access = SecretService.method.accessSecretVersion;
    expect(isRetrySafe(access, { noConsume: true })).toBe(true);
    expect(isRetrySafe(access, { noConsume: false })).toBe(false);
  });

  it("retries an access with no_consume, by id and by path", async () => {
    const fake = createFake({ fault: unavailableFirst(2) });
    const client = createClient(SecretService, fake.transport(cofferInterceptors({ retry: FAST })));
    const byId = await client.accessSecretVersion({ secretId: SECRET_ID, noConsume: true });
    expect(new TextDecoder().decode(byId.data)).toBe("s3cret");
    await client.accessSecretVersionByPath({ name: "db", noConsume: true });
    expect(fake.count("AccessSecretVersion", true)).toBe(3);
    expect(fake.count("AccessSecretVersionByPath", true)).toBe(3);
  });

  it("retries the access helper's read of a version that is not single-access", async () => {
    const fake = createFake({ fault: unavailableFirst(2) });
    const client = createClient(SecretService, fake.transport(cofferInterceptors({ retry: FAST })));
    const value = await accessSecret(client, "/prod/db", { projectId: "p" });
    expect(value.text()).toBe("s3cret");
    expect(fake.calls.map((c) => c.noConsume)).toEqual([true, true, true]);
  });

  it("never retries the access that consumes a single-access version", async () => {
    // The probe (no_consume) is retried; the consuming access fails once, for good.
    const fake = createFake({
      fault: (call, calls) =>
        call.noConsume && calls.length > 2
          ? undefined
          : new ConnectError("connection reset", Code.Unavailable),
      access: (call) =>
        call.noConsume
          ? answer(new Uint8Array(), { revision: 7, singleAccess: true })
          : answer("once", { revision: 7, singleAccess: true }),
    });
    const client = createClient(SecretService, fake.transport(cofferInterceptors({ retry: FAST })));
    await expect(
      accessSecret(client, SECRET_ID, { consumeSingleAccess: true }),
    ).rejects.toMatchObject({ code: Code.Unavailable });
    expect(fake.calls).toEqual([
      { method: "AccessSecretVersion", noConsume: true, revision: "latest_enabled" },
      { method: "AccessSecretVersion", noConsume: true, revision: "latest_enabled" },
      { method: "AccessSecretVersion", noConsume: true, revision: "latest_enabled" },
      { method: "AccessSecretVersion", noConsume: false, revision: "7" },
    ]);
  });

  it("retries only UNAVAILABLE", async () => {
    for (const code of [
      Code.Internal,
      Code.Unknown,
      Code.DeadlineExceeded,
      Code.Aborted,
      Code.ResourceExhausted,
      Code.Canceled,
    ]) {
      const fake = createFake({ fault: () => new ConnectError("no", code) });
      await expect(clientOf(SecretService, fake).getSecret?.({})).rejects.toMatchObject({ code });
      expect(fake.count("GetSecret")).toBe(1);
    }
  });

  it("stops after maxAttempts and throws the last UNAVAILABLE", async () => {
    const fake = createFake({ fault: unavailableFirst(100) });
    const client = clientOf(SecretService, fake, { ...FAST, maxAttempts: 3 });
    await expect(client.listSecrets?.({})).rejects.toMatchObject({
      code: Code.Unavailable,
      rawMessage: "the server is restarting",
    });
    expect(fake.count("ListSecrets")).toBe(3);
  });

  it("waits with exponential backoff and full jitter", async () => {
    const delays = async (random: () => number) => {
      const events: RetryEvent[] = [];
      const fake = createFake({ fault: unavailableFirst(100) });
      const client = clientOf(SecretService, fake, {
        initialDelayMs: 8,
        maxDelayMs: 40,
        maxAttempts: 6,
        random,
        onRetry: (e) => events.push(e),
      });
      await expect(client.getSecret?.({})).rejects.toThrow();
      expect(events.map((e) => e.retry)).toEqual([1, 2, 3, 4, 5]);
      expect(events[0]?.procedure).toBe("coffer.secretmanager.v1.SecretService/GetSecret");
      expect(events[0]?.error.code).toBe(Code.Unavailable);
      return events.map((e) => e.delayMs);
    };
    // The ceilings double from 8 ms and stop at 40 ms...
    expect(await delays(() => 0.999)).toEqual([7, 15, 31, 39, 39]);
    // ...and each delay is drawn below its ceiling.
    expect(await delays(() => 0.5)).toEqual([4, 8, 16, 20, 20]);
    expect(await delays(() => 0)).toEqual([0, 0, 0, 0, 0]);
  });

  it("keeps every attempt and wait inside the call's deadline", async () => {
    const fake = createFake({ fault: unavailableFirst(100) });
    const client = clientOf(SecretService, fake, { initialDelayMs: 60_000, random: () => 0.99 });
    const started = Date.now();
    await expect(client.getSecret?.({}, { timeoutMs: 100 })).rejects.toMatchObject({
      code: Code.DeadlineExceeded,
    });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(fake.count("GetSecret")).toBe(1);
  });

  it("stops waiting when the call is aborted", async () => {
    const fake = createFake({ fault: unavailableFirst(100) });
    const client = clientOf(SecretService, fake, { initialDelayMs: 60_000, random: () => 0.99 });
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 50);
    await expect(client.getSecret?.({}, { signal: abort.signal })).rejects.toMatchObject({
      code: Code.Canceled,
    });
    expect(fake.count("GetSecret")).toBe(1);
  });

  it("is off unless asked for in createCofferTransport", async () => {
    const fake = createFake({ fault: unavailableFirst(1) });
    await expect(clientOf(SecretService, fake, false).getSecret?.({})).rejects.toMatchObject({
      code: Code.Unavailable,
    });
    expect(fake.count("GetSecret")).toBe(1);
  });
});

describe("retries over a real connect-node server", () => {
  let server: http.Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    server = undefined;
  });

  async function listen(options: FakeOptions) {
    const fake = createFake(options);
    server = http.createServer(connectNodeAdapter({ routes: fake.routes }));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return { fake, url };
  }

  it("createCoffer retries reads and safe accesses by default; createCofferClient does not", async () => {
    const { fake, url } = await listen({ fault: unavailableFirst(2) });
    for (const protocol of ["connect", "grpc-web"] as const) {
      const options = { url, protocol, httpVersion: "1.1" as const };
      fake.calls.length = 0;
      const coffer = createCoffer({ ...options, projectId: "p" });
      await coffer.rpc.getSecret({ secretId: SECRET_ID });
      expect((await coffer.access("/prod/db")).text()).toBe("s3cret");
      await expect(coffer.rpc.createSecret({})).rejects.toMatchObject({
        code: Code.Unavailable,
      });
      expect(fake.count("GetSecret")).toBe(3);
      expect(fake.count("AccessSecretVersionByPath", true)).toBe(3);
      expect(fake.count("CreateSecret")).toBe(1);

      fake.calls.length = 0;
      const plain = createCofferClient(options);
      await expect(plain.getSecret({ secretId: SECRET_ID })).rejects.toMatchObject({
        code: Code.Unavailable,
      });
      expect(fake.count("GetSecret")).toBe(1);
    }
  });
});
