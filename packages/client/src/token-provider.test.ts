import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { AuthService, type ExchangeTokenRequest, SecretService } from "@coffer/api";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cofferInterceptors } from "./coffer.ts";
import { TokenExchangeError } from "./errors.ts";
import { createFake } from "./fake-coffer.ts";
import { jwtTokenProvider } from "./index.ts";
import type { TokenRenewal } from "./token-provider.ts";

const MINUTE = 60_000;
const JWT_1 = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvbmUifQ.c2lnbmF0dXJlLW9uZQ";
const JWT_2 = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0d28ifQ.c2lnbmF0dXJlLXR3bw";

/**
 * A fake AuthService: each exchange answers a new token "coffer_tN" living
 * `lifeMs` by the fake's clock (Date.now, so fake timers move it), or the
 * error `refuse` gives.
 */
function fakeAuth(lifeMs = 15 * MINUTE) {
  const requests: ExchangeTokenRequest[] = [];
  const state: { refuse?: () => ConnectError | undefined; delay?: Promise<void> } = {};
  const transport = createRouterTransport(({ service }) => {
    service(AuthService, {
      async exchangeToken(req, ctx) {
        requests.push(req);
        if (ctx.requestHeader.has("authorization")) {
          throw new ConnectError("an exchange carries no bearer token", Code.InvalidArgument);
        }
        await state.delay;
        const error = state.refuse?.();
        if (error !== undefined) throw error;
        const now = Date.now();
        const n = requests.length;
        return {
          value: `coffer_t${n}`,
          token: {
            id: `id-${n}`,
            createdAt: timestampFromMs(now),
            expiresAt: timestampFromMs(now + lifeMs),
          },
        };
      },
    });
  });
  return { transport, requests, state };
}

/** A SecretService client whose calls carry `token`, and the authorization each call carried. */
function clientWith(token: Parameters<typeof cofferInterceptors>[0]["token"]) {
  const seen: string[] = [];
  const fake = createFake();
  const rpc = createClient(
    SecretService,
    fake.transport([
      ...cofferInterceptors({ token }),
      (next) => (req) => {
        seen.push(req.header.get("authorization") ?? "");
        return next(req);
      },
    ]),
  );
  return { rpc, seen };
}

const unauthenticated = () => new ConnectError("token expired", Code.Unauthenticated);

describe("jwtTokenProvider", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["Date"], now: Date.parse("2026-12-06T00:00:00Z") });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("exchanges once for 100 parallel calls, without a bearer token on the exchange", async () => {
    const auth = fakeAuth();
    let release: () => void = () => {};
    auth.state.delay = new Promise((r) => {
      release = r;
    });
    const provider = jwtTokenProvider({ transport: auth.transport, jwt: () => JWT_1 });
    const { rpc, seen } = clientWith(provider);
    const calls = Array.from({ length: 100 }, () => rpc.getSecret({ secretId: "s" }));
    release();
    await Promise.all(calls);
    expect(auth.requests).toHaveLength(1);
    expect(auth.requests[0]?.jwt).toBe(JWT_1);
    expect(seen).toHaveLength(100);
    expect(new Set(seen)).toEqual(new Set(["Bearer coffer_t1"]));
  });

  it("renews once two thirds of the life have passed, in the background, then uses the new token", async () => {
    const auth = fakeAuth(15 * MINUTE);
    const renewals: TokenRenewal[] = [];
    const provider = jwtTokenProvider({
      transport: auth.transport,
      jwt: () => JWT_1,
      onRenew: (r) => renewals.push(r),
    });
    const start = Date.now();
    expect(provider.expiresAt).toBeUndefined();
    expect(await provider()).toBe("coffer_t1");
    expect(provider.expiresAt?.getTime()).toBe(start + 15 * MINUTE);
    expect(provider.renewAt?.getTime()).toBe(start + 10 * MINUTE);
    expect(renewals).toEqual([
      {
        tokenId: "id-1",
        expiresAt: new Date(start + 15 * MINUTE),
        renewAt: new Date(start + 10 * MINUTE),
      },
    ]);

    vi.setSystemTime(start + 10 * MINUTE - 1);
    expect(await provider()).toBe("coffer_t1");
    expect(auth.requests).toHaveLength(1);

    vi.setSystemTime(start + 10 * MINUTE);
    // Due: this call still gets the current token, the renewal runs beside it.
    expect(await provider()).toBe("coffer_t1");
    await vi.waitFor(() => expect(renewals).toHaveLength(2));
    expect(auth.requests).toHaveLength(2);
    expect(await provider()).toBe("coffer_t2");
    expect(provider.expiresAt?.getTime()).toBe(start + 25 * MINUTE);
  });

  it("renews at renewBeforeMs before the expiry when asked, and asks for ttlMs", async () => {
    const auth = fakeAuth(5 * MINUTE);
    const provider = jwtTokenProvider({
      transport: auth.transport,
      jwt: () => JWT_1,
      ttlMs: 5 * MINUTE,
      renewBeforeMs: 30_000,
    });
    const start = Date.now();
    await provider();
    expect(provider.renewAt?.getTime()).toBe(start + 5 * MINUTE - 30_000);
    expect(auth.requests[0]?.ttl).toEqual(expect.objectContaining({ seconds: 300n }));
  });

  it("measures the life by the server's clock, so a skewed local clock cannot keep an expired token", async () => {
    const skewed = createRouterTransport(({ service }) => {
      service(AuthService, {
        exchangeToken: () => ({
          value: "coffer_skewed",
          // The server's clock is an hour ahead of ours.
          token: {
            id: "x",
            createdAt: timestampFromMs(Date.now() + 60 * MINUTE),
            expiresAt: timestampFromMs(Date.now() + 75 * MINUTE),
          },
        }),
      });
    });
    const provider = jwtTokenProvider({ transport: skewed, jwt: () => JWT_1 });
    const start = Date.now();
    await provider();
    expect(provider.expiresAt?.getTime()).toBe(start + 15 * MINUTE);
  });

  it("waits for the exchange once the token has expired", async () => {
    const auth = fakeAuth(3 * MINUTE);
    const provider = jwtTokenProvider({ transport: auth.transport, jwt: () => JWT_1 });
    await provider();
    vi.setSystemTime(Date.now() + 3 * MINUTE);
    expect(await provider()).toBe("coffer_t2");
  });

  it("re-reads the JWT file at each exchange, since the platform rotates it", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "coffer-jwt-"));
    try {
      const file = path.join(dir, "token");
      await writeFile(file, `${JWT_1}\n`);
      const auth = fakeAuth();
      const provider = jwtTokenProvider({ transport: auth.transport, jwtFile: file });
      await provider();
      await writeFile(`${file}.new`, JWT_2);
      // As the kubelet does: a new file renamed over the old one.
      await import("node:fs/promises").then((fs) => fs.rename(`${file}.new`, file));
      expect(await provider.renew()).toBe("coffer_t2");
      expect(auth.requests.map((r) => r.jwt)).toEqual([JWT_1, JWT_2]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("names the JWT file and what to check when the server refuses, never the JWT or a token", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "coffer-jwt-"));
    try {
      const file = path.join(dir, "token");
      await writeFile(file, JWT_1);
      const auth = fakeAuth();
      auth.state.refuse = () =>
        new ConnectError(
          "this JWT is not accepted; an admin finds the reason in the audit trail (method ExchangeToken)",
          Code.Unauthenticated,
        );
      const provider = jwtTokenProvider({ transport: auth.transport, jwtFile: file });
      const { rpc } = clientWith(provider);
      const err = await rpc.getSecret({ secretId: "s" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TokenExchangeError);
      const error = err as TokenExchangeError;
      expect(error.code).toBe(Code.Unauthenticated);
      expect(error.message).toContain(`the JWT file ${file}`);
      expect(error.message).toMatch(/trusted issuer.*audience.*identity binding.*audit trail/s);
      expect(JSON.stringify({ m: error.message, s: error.stack })).not.toContain(JWT_1);
      expect(error.message).not.toMatch(/coffer_t|eyJ/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("says when the JWT file is missing or empty", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "coffer-jwt-"));
    try {
      const file = path.join(dir, "token");
      const auth = fakeAuth();
      const provider = jwtTokenProvider({ transport: auth.transport, jwtFile: file });
      await expect(provider()).rejects.toThrow(
        new RegExp(`cannot read the JWT file ${file} \\(ENOENT\\): check that the file exists`),
      );
      await writeFile(file, "\n");
      await expect(provider()).rejects.toThrow(`the JWT file ${file} is empty`);
      expect(auth.requests).toHaveLength(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("keeps the current token while a background renewal fails, then surfaces the failure at expiry", async () => {
    const auth = fakeAuth(15 * MINUTE);
    const provider = jwtTokenProvider({ transport: auth.transport, jwt: () => JWT_1 });
    const start = Date.now();
    await provider();
    auth.state.refuse = () => new ConnectError("connection refused", Code.Unavailable);
    vi.setSystemTime(start + 11 * MINUTE);
    expect(await provider()).toBe("coffer_t1");
    await vi.waitFor(() => expect(auth.requests).toHaveLength(2));
    // Not again on every call: at most once a second.
    expect(await provider()).toBe("coffer_t1");
    expect(auth.requests).toHaveLength(2);
    vi.setSystemTime(start + 15 * MINUTE);
    const err = await provider().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenExchangeError);
    expect((err as TokenExchangeError).code).toBe(Code.Unavailable);
    expect((err as Error).message).toContain(
      "exchanging the JWT from the jwt option for a Coffer token: connection refused",
    );
    auth.state.refuse = undefined;
    expect(await provider()).toMatch(/^coffer_t\d$/);
  });

  it("sends nothing twice for a plain provider, which cannot renew", async () => {
    const fake = createFake({ fault: () => unauthenticated() });
    const rpc = createClient(
      SecretService,
      fake.transport(cofferInterceptors({ token: async () => "coffer_static" })),
    );
    await expect(rpc.getSecret({ secretId: "s" })).rejects.toMatchObject({
      code: Code.Unauthenticated,
    });
    expect(fake.count("GetSecret")).toBe(1);
  });

  it("with a renewable provider, retries a read once with the renewed token", async () => {
    const auth = fakeAuth();
    const provider = jwtTokenProvider({ transport: auth.transport, jwt: () => JWT_1 });
    let revoked = "";
    const fake = createFake({
      fault: (call) =>
        call.method === "GetSecret" || call.method === "CreateSecret"
          ? lastAuth === revoked
            ? unauthenticated()
            : undefined
          : undefined,
    });
    let lastAuth = "";
    const rpc = createClient(
      SecretService,
      fake.transport([
        ...cofferInterceptors({ token: provider }),
        (next) => (req) => {
          lastAuth = req.header.get("authorization") ?? "";
          return next(req);
        },
      ]),
    );
    await provider();
    revoked = "Bearer coffer_t1";
    await rpc.getSecret({ secretId: "s" });
    expect(auth.requests).toHaveLength(2);
    expect(fake.count("GetSecret")).toBe(2);
    expect(lastAuth).toBe("Bearer coffer_t2");

    revoked = "Bearer coffer_t2";
    await expect(rpc.createSecret({ projectId: "p", name: "n" })).rejects.toMatchObject({
      code: Code.Unauthenticated,
    });
    expect(fake.count("CreateSecret")).toBe(1);
    // The refused token is dropped: the next call exchanges.
    await rpc.getSecret({ secretId: "s" });
    expect(auth.requests).toHaveLength(3);
    expect(lastAuth).toBe("Bearer coffer_t3");
  });

  it("refuses options without exactly one JWT source or without a server", () => {
    const auth = fakeAuth();
    expect(() => jwtTokenProvider({ transport: auth.transport })).toThrow(
      "jwtTokenProvider needs exactly one of jwtFile or jwt",
    );
    expect(() => jwtTokenProvider({ jwt: () => JWT_1 })).toThrow(
      "jwtTokenProvider needs url (or transport)",
    );
  });
});
