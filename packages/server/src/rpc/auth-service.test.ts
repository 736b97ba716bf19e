import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { crc32 } from "node:zlib";
import { durationFromMs, timestampDate } from "@bufbuild/protobuf/wkt";
import { Role, SecretType } from "@coffer/api";
import { Code, ConnectError } from "@connectrpc/connect";
import { eq } from "drizzle-orm";
import { SignJWT } from "jose";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents } from "../db/schema.ts";
import { EXCHANGE_REFUSED } from "../domain/identity/exchange.ts";
import { OTHER_PROJECT, PROJECT } from "../testing/backends.ts";
import type { AdminClient, Protocol } from "../testing/clients.ts";
import {
  type InMemoryServer,
  inMemoryBackends,
  startInMemoryServer,
} from "../testing/in-memory-server.ts";
import { startOidcIssuer, type TestOidcIssuer, trustTestIssuer } from "../testing/oidc-issuer.ts";
import { serverBackends, type TestServer } from "../testing/rpc-servers.ts";

// AuthService.ExchangeToken through the whole server (in memory: the call
// chain, the domain, a real database on each backend), against a real OIDC
// issuer on the loopback. What a caller sees (a Coffer token that works
// within its grants, or the one UNAUTHENTICATED), and what the audit trail
// records (issuer, subject, binding, token issued, or the reason).

const METHOD = "coffer.auth.v1.AuthService/ExchangeToken";
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);

const expiryOf = (t: Parameters<typeof timestampDate>[0] | undefined) =>
  t === undefined ? 0 : timestampDate(t).getTime();

async function outcome(p: Promise<unknown>): Promise<{ code: Code | 0; message: string }> {
  try {
    await p;
    return { code: 0, message: "" };
  } catch (e) {
    const err = ConnectError.from(e);
    return { code: err.code, message: err.rawMessage };
  }
}

describe.each(inMemoryBackends)("ExchangeToken ($name)", (backend) => {
  let s: InMemoryServer;
  let issuer: TestOidcIssuer;
  let stranger: TestOidcIssuer;
  let admin: AdminClient;
  let bindingId: string;
  let prodSecret: string;
  let stagingSecret: string;
  const logged: string[] = [];
  /** Every JWT presented in this file: none may reach a log line or an audit row. */
  const presented: string[] = [];

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _encoding, done) {
        logged.push(String(chunk));
        done();
      },
    });
    issuer = await startOidcIssuer();
    stranger = await startOidcIssuer({ audience: issuer.audience });
    // Floor 0: an unknown key id is always refreshed first, so a refusal
    // for it is "after refresh" (the floor has tests of its own).
    s = await backend.start({ jwksRefreshFloorMs: 0 }, pino({ level: "trace" }, sink));
    admin = s.adminClient("connect", s.adminToken);
    bindingId = (
      await trustTestIssuer(admin, issuer, {
        grants: [{ projectId: PROJECT, role: Role.SECRET_ACCESS, pathPrefix: "/prod" }],
        conditions: [{ claim: "sub", value: "test-subject" }],
      })
    ).bindingId;
    const secrets = s.client("connect", s.adminToken);
    const make = async (path: string) => {
      const data = new TextEncoder().encode(`value at ${path}`);
      const r = await secrets.createSecret({
        projectId: PROJECT,
        name: "db",
        path,
        type: SecretType.OPAQUE,
        firstVersion: { data, dataCrc32: crc32(data) },
      });
      return r.secret?.id ?? "";
    };
    prodSecret = await make("/prod");
    stagingSecret = await make("/staging");
  }, 120_000);
  afterAll(async () => {
    await s?.stop();
    await issuer?.close();
    await stranger?.close();
  });

  const exchange = (
    jwt: string,
    options: { protocol?: Protocol; ttlMs?: number; requestId?: string } = {},
  ) => {
    presented.push(jwt);
    return s
      .authClient(options.protocol ?? "connect")
      .exchangeToken(
        { jwt, ...(options.ttlMs !== undefined && { ttl: durationFromMs(options.ttlMs) }) },
        { headers: { "x-request-id": options.requestId ?? randomUUID() } },
      );
  };

  const eventOf = async (requestId: string) => {
    const rows = await s.server.domain.regions
      .resolve("")
      .db.select()
      .from(auditEvents)
      .where(eq(auditEvents.requestId, requestId));
    expect(rows).toHaveLength(1);
    const [row] = rows;
    if (row === undefined) throw new Error(`no audit event for ${requestId}`);
    return row;
  };

  it.each<Protocol>(["grpc", "connect"])(
    "gives a token that works within the binding's grants, and not outside them (%s)",
    async (protocol) => {
      const requestId = randomUUID();
      const jwt = await issuer.sign();
      const r = await exchange(jwt, { protocol, requestId });
      expect(r.value).toMatch(/^coffer_/);
      expect(r.token).toMatchObject({
        bindingId,
        issuer: issuer.url,
        subject: "test-subject",
        createdBy: "",
        grants: [{ projectId: PROJECT, role: Role.SECRET_ACCESS, pathPrefix: "/prod" }],
      });
      expect(r.token?.name).toMatch(/ binding: test-subject$/);
      const client = s.client(protocol, r.value);
      const got = await client.accessSecretVersion({ secretId: prodSecret, revision: "latest" });
      expect(new TextDecoder().decode(got.data)).toBe("value at /prod");
      expect(
        (await outcome(client.accessSecretVersion({ secretId: stagingSecret, revision: "latest" })))
          .code,
      ).toBe(Code.NotFound);
      expect((await outcome(client.listSecrets({ projectId: PROJECT }))).code).toBe(
        Code.PermissionDenied,
      );
      expect((await outcome(client.listSecrets({ projectId: OTHER_PROJECT }))).code).toBe(
        Code.NotFound,
      );

      const event = await eventOf(requestId);
      expect(event).toMatchObject({
        method: METHOD,
        outcome: "OK",
        tokenId: null,
        issuer: issuer.url,
        subject: "test-subject",
        bindingId,
        targetTokenId: r.token?.id,
        reason: null,
        projectId: PROJECT,
      });
      // ListAuditEvents shows the same.
      const listed = await admin.listAuditEvents({ method: METHOD, pageSize: 1000 });
      expect(listed.events.find((e) => e.requestId === requestId)).toMatchObject({
        issuer: issuer.url,
        subject: "test-subject",
        bindingId,
        targetTokenId: r.token?.id,
        reason: "",
      });
    },
  );

  it("lists exchanged tokens with their binding, issuer and subject", async () => {
    const r = await exchange(await issuer.sign());
    const listed = await admin.listTokens({ projectId: PROJECT });
    expect(listed.tokens.find((t) => t.id === r.token?.id)).toMatchObject({
      bindingId,
      issuer: issuer.url,
      subject: "test-subject",
    });
  });

  it.each([
    ["the binding's token_ttl (15m by default)", { expiresInS: 3600 }, 900],
    ["a shorter ttl asked for", { ttlMs: 60_000, expiresInS: 3600 }, 60],
    [
      "the binding's token_ttl over a longer ttl asked for",
      { ttlMs: 7_200_000, expiresInS: 3600 },
      900,
    ],
    ["the JWT's own expiry", { expiresInS: 120 }, 120],
  ])(
    "caps the token's life at %s",
    async (_name, o: { ttlMs?: number; expiresInS?: number }, lifeS) => {
      const before = Date.now();
      const r = await exchange(
        await issuer.sign(o.expiresInS !== undefined ? { expiresInS: o.expiresInS } : {}),
        o.ttlMs !== undefined ? { ttlMs: o.ttlMs } : {},
      );
      const expires = expiryOf(r.token?.expiresAt);
      expect(expires).toBeGreaterThanOrEqual(before + lifeS * 1000 - 1000);
      expect(expires).toBeLessThanOrEqual(Date.now() + lifeS * 1000);
    },
  );

  it("caps the token's life at one hour and at a binding of an hour", async () => {
    const sub = `hour-${randomUUID()}`;
    await admin.createIdentityBinding({
      binding: {
        name: "an hour",
        issuerId: (await admin.listTrustedIssuers({})).issuers.find(
          (i) => i.issuerUrl === issuer.url,
        )?.id,
        conditions: [{ claim: "sub", value: sub }],
        grants: [{ projectId: PROJECT, role: Role.READ_ONLY, pathPrefix: "/" }],
        tokenTtl: durationFromMs(3_600_000),
      },
    });
    const before = Date.now();
    const r = await exchange(await issuer.sign({ claims: { sub }, expiresInS: 86_400 }), {
      ttlMs: 86_400_000,
    });
    const expires = expiryOf(r.token?.expiresAt);
    expect(expires).toBeGreaterThanOrEqual(before + 3_600_000 - 1000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 3_600_000);
  });

  describe("refusals: one UNAUTHENTICATED, the reason in the audit trail", () => {
    const cases: [string, () => Promise<string>, string][] = [
      [
        "alg none",
        async () =>
          `${b64({ alg: "none" })}.${b64({ iss: issuer.url, aud: issuer.audience, sub: "test-subject", exp: now() + 600 })}.`,
        "algorithm not allowed (none)",
      ],
      [
        "HS256 signed with the issuer's public key as the secret",
        async () => {
          const kid = issuer.keyIds[0] ?? "";
          const pem = new TextEncoder().encode(await issuer.publicKeyPem(kid));
          return new SignJWT({ sub: "test-subject" })
            .setProtectedHeader({ alg: "HS256", kid })
            .setIssuer(issuer.url)
            .setAudience(issuer.audience)
            .setIssuedAt()
            .setExpirationTime("10m")
            .sign(pem);
        },
        "algorithm not allowed (HS256)",
      ],
      [
        "a key id the issuer does not publish, even after a refresh",
        async () => stranger.sign({ claims: { iss: issuer.url } }),
        "unknown key id",
      ],
      [
        "a bad signature (claims changed after signing)",
        async () => {
          const [header, , sig] = (await issuer.sign()).split(".");
          const claims = { iss: issuer.url, aud: issuer.audience, sub: "admin", exp: now() + 600 };
          return `${header}.${b64(claims)}.${sig}`;
        },
        "signature does not verify",
      ],
      ["expired (beyond the skew)", () => issuer.sign({ expiresInS: -120 }), "expired"],
      [
        "nbf in the future (beyond the skew)",
        () => issuer.sign({ claims: { nbf: now() + 300 } }),
        "not yet valid (nbf)",
      ],
      [
        "iat in the future (beyond the skew)",
        () => issuer.sign({ claims: { iat: now() + 300 } }),
        "issued in the future (iat)",
      ],
      ["no exp", () => issuer.sign({ claims: { exp: undefined } }), "no exp claim"],
      [
        "an exp that is not a number",
        () => issuer.sign({ claims: { exp: "soon" } }),
        "exp claim not valid",
      ],
      [
        "an iat that is not a number",
        () => issuer.sign({ claims: { iat: "now" } }),
        "iat claim not valid",
      ],
      [
        "a wrong audience",
        () => issuer.sign({ claims: { aud: "someone-else" } }),
        "audience not accepted",
      ],
      ["an issuer not trusted", () => stranger.sign(), "issuer not trusted"],
      [
        "no binding matches",
        () => issuer.sign({ claims: { sub: "nobody-bound" } }),
        "no binding matches",
      ],
      [
        "an oversized JWT",
        () => issuer.sign({ claims: { pad: "x".repeat(17 * 1024) } }),
        "JWT too large (over 16384 bytes)",
      ],
      ["garbage", async () => "not-a-jwt", "malformed JWT"],
      ["three parts of garbage", async () => "a.b.c", "malformed JWT"],
      ["nothing", async () => "", "no JWT"],
    ];

    it.each(cases)("%s", async (_name, make, reason) => {
      const requestId = randomUUID();
      const got = await outcome(exchange(await make(), { requestId }));
      expect(got).toEqual({ code: Code.Unauthenticated, message: EXCHANGE_REFUSED });
      const event = await eventOf(requestId);
      expect(event).toMatchObject({
        method: METHOD,
        outcome: "UNAUTHENTICATED",
        reason,
        targetTokenId: null,
      });
    });

    it("records the issuer and subject the JWT claimed on a refusal", async () => {
      const requestId = randomUUID();
      await outcome(exchange(await issuer.sign({ expiresInS: -120 }), { requestId }));
      expect(await eventOf(requestId)).toMatchObject({
        issuer: issuer.url,
        subject: "test-subject",
        reason: "expired",
      });
    });

    it("accepts times within the 60 s skew", async () => {
      const jwt = await issuer.sign({
        expiresInS: -30,
        claims: { nbf: now() + 30, iat: now() + 30 },
      });
      // exp 30 s ago is within the skew, but leaves no life to give: refused as expired.
      expect((await outcome(exchange(jwt))).code).toBe(Code.Unauthenticated);
      const fresh = await issuer.sign({ claims: { nbf: now() + 30, iat: now() + 30 } });
      expect((await outcome(exchange(fresh))).code).toBe(0);
    });

    it("refuses bindings that disagree, and accepts bindings that give the same grants", async () => {
      const issuerId = (await admin.listTrustedIssuers({})).issuers.find(
        (i) => i.issuerUrl === issuer.url,
      )?.id;
      const bind = (name: string, value: string, glob: boolean, role: Role) =>
        admin.createIdentityBinding({
          binding: {
            name,
            issuerId,
            conditions: [{ claim: "sub", value, glob }],
            grants: [{ projectId: PROJECT, role, pathPrefix: "/prod" }],
          },
        });
      await bind("narrow", "team-a:api", false, Role.READ_ONLY);
      await bind("broad", "team-a:*", true, Role.SECRET_ACCESS);
      const requestId = randomUUID();
      const got = await outcome(
        exchange(await issuer.sign({ claims: { sub: "team-a:api" } }), { requestId }),
      );
      expect(got.code).toBe(Code.Unauthenticated);
      expect((await eventOf(requestId)).reason).toMatch(/^bindings disagree \(/);

      const one = (await bind("same 1", "team-b:*", true, Role.READ_ONLY)).binding?.id ?? "";
      const two = (await bind("same 2", "*:api", true, Role.READ_ONLY)).binding?.id ?? "";
      const ok = await exchange(await issuer.sign({ claims: { sub: "team-b:api" } }));
      expect(ok.token?.bindingId).toBe([one, two].sort()[0]);
    });

    it("refuses a replay of a JWT once it expired", async () => {
      const jwt = await issuer.sign({ expiresInS: 2 });
      expect((await outcome(exchange(jwt))).code).toBe(0);
      // 2 s of life and 60 s of skew: past both, the same JWT is refused.
      const later = await issuer.sign({ expiresInS: -61 });
      const requestId = randomUUID();
      expect((await outcome(exchange(later, { requestId }))).code).toBe(Code.Unauthenticated);
      expect((await eventOf(requestId)).reason).toBe("expired");
    });

    it("refuses a ttl shorter than a second by field", async () => {
      const got = await outcome(exchange(await issuer.sign(), { ttlMs: 10 }));
      expect(got).toEqual({
        code: Code.InvalidArgument,
        message: "ttl: must be at least 1s (or unset: the binding's token_ttl)",
      });
    });
  });

  it("accepts a key the issuer adds and signs with", async () => {
    const kid = await issuer.addKey("ES256");
    const r = await exchange(await issuer.sign({ kid }));
    expect(r.value).toMatch(/^coffer_/);
    const ed = await issuer.addKey("EdDSA");
    expect((await exchange(await issuer.sign({ kid: ed }))).value).toMatch(/^coffer_/);
  });

  it("revokes a binding's tokens when it is deleted, and its issuer's when that is", async () => {
    const other = await startOidcIssuer();
    try {
      const ids = await trustTestIssuer(admin, other, {
        grants: [{ projectId: PROJECT, role: Role.SECRET_ACCESS, pathPrefix: "/prod" }],
        keys: "static",
      });
      const first = await exchange(await other.sign());
      const second = await exchange(await other.sign());
      const client = s.client("grpc", first.value);
      expect(
        (await outcome(client.accessSecretVersion({ secretId: prodSecret, revision: "1" }))).code,
      ).toBe(0);
      const deleted = await admin.deleteIdentityBinding({ bindingId: ids.bindingId });
      expect(deleted.revokedTokens).toBe(2n);
      // At once: the authenticator forgot them.
      expect(
        (await outcome(client.accessSecretVersion({ secretId: prodSecret, revision: "1" }))).code,
      ).toBe(Code.Unauthenticated);
      expect(
        (await outcome(s.client("connect", second.value).listSecrets({ projectId: PROJECT }))).code,
      ).toBe(Code.Unauthenticated);
      const requestId = randomUUID();
      expect((await outcome(exchange(await other.sign(), { requestId }))).code).toBe(
        Code.Unauthenticated,
      );
      expect((await eventOf(requestId)).reason).toBe("no binding matches");

      // The issuer: its bindings go, their tokens are revoked.
      const again = await admin.createIdentityBinding({
        binding: {
          name: "again",
          issuerId: ids.issuerId,
          conditions: [{ claim: "sub", value: "test-subject" }],
          grants: [{ projectId: PROJECT, role: Role.READ_ONLY, pathPrefix: "/" }],
        },
      });
      const third = await exchange(await other.sign());
      expect(third.token?.bindingId).toBe(again.binding?.id);
      const gone = await admin.deleteTrustedIssuer({ issuerId: ids.issuerId });
      expect(gone).toMatchObject({ deletedBindings: 1n, revokedTokens: 1n });
      expect(
        (await outcome(s.client("connect", third.value).listSecrets({ projectId: PROJECT }))).code,
      ).toBe(Code.Unauthenticated);
      const revokedEvents = await admin.listAuditEvents({
        method: "coffer.admin.v1.AdminService/DeleteTrustedIssuer",
      });
      expect(revokedEvents.events.map((e) => e.targetTokenId)).toContain(third.token?.id);
      expect((await outcome(exchange(await other.sign()))).code).toBe(Code.Unauthenticated);
    } finally {
      await other.close();
    }
  });

  it("never writes a JWT into a log line or an audit event", async () => {
    const rows = await s.server.domain.regions.resolve("").db.select().from(auditEvents);
    const audit = JSON.stringify(rows);
    const logs = logged.join("\n");
    expect(presented.length).toBeGreaterThan(20);
    const leaks: string[] = [];
    for (const [i, jwt] of presented.entries()) {
      // A JWT's signature (or, unsigned, its claims) is what makes it usable.
      const parts = jwt.split(".");
      const needle = (parts[2] ?? "").length >= 16 ? parts[2] : parts[1];
      if (needle === undefined || needle.length < 16) continue;
      if (audit.includes(needle)) leaks.push(`JWT ${i} in the audit trail`);
      if (logs.includes(needle)) leaks.push(`JWT ${i} in the logs`);
    }
    expect(leaks).toEqual([]);
    // And the log lines of the exchanges are there, without bodies.
    expect(logs).toContain(METHOD);
  });
});

describe("ExchangeToken over the real ports (grpc-js and connect-node)", () => {
  const backend = serverBackends.find((b) => b.name === "pglite");
  let s: TestServer;
  let issuer: TestOidcIssuer;
  beforeAll(async () => {
    issuer = await startOidcIssuer({ alg: "ES256" });
    if (backend === undefined) throw new Error("no PGlite backend");
    s = await backend.start();
    await trustTestIssuer(s.adminClient("grpc", s.adminToken), issuer, {
      grants: [{ projectId: PROJECT, role: Role.READ_ONLY, pathPrefix: "/" }],
      keys: "jwks_url",
    });
  }, 120_000);
  afterAll(async () => {
    await s?.stop();
    await issuer?.close();
  });

  it.each<Protocol>(["grpc", "connect", "grpc-web"])(
    "exchanges and calls with the token (%s)",
    async (protocol) => {
      const r = await s.authClient(protocol).exchangeToken({ jwt: await issuer.sign() });
      const listed = await s.client(protocol, r.value).listSecrets({ projectId: PROJECT });
      expect(listed.totalCount).toBeGreaterThanOrEqual(0n);
      const refused = await outcome(s.authClient(protocol).exchangeToken({ jwt: "x.y.z" }));
      expect(refused).toEqual({ code: Code.Unauthenticated, message: EXCHANGE_REFUSED });
    },
  );
});

describe("ExchangeToken and the per-address limit", () => {
  let s: InMemoryServer;
  let issuer: TestOidcIssuer;
  beforeAll(async () => {
    issuer = await startOidcIssuer();
    // One refused call per second per address, bursts of two.
    s = await startInMemoryServer({ peerRateLimitRps: 1 });
    await trustTestIssuer(s.adminClient("connect", s.adminToken), issuer, {
      grants: [{ projectId: PROJECT, role: Role.READ_ONLY, pathPrefix: "/" }],
    });
  }, 120_000);
  afterAll(async () => {
    await s?.stop();
    await issuer?.close();
  });

  it("charges refused exchanges to the caller's address, and gives accepted ones back", async () => {
    const auth = s.authClient("connect");
    // Accepted exchanges cost nothing, however many.
    for (let i = 0; i < 5; i++) {
      expect((await outcome(auth.exchangeToken({ jwt: await issuer.sign() }))).code).toBe(0);
    }
    const codes: (Code | 0)[] = [];
    for (let i = 0; i < 4; i++) codes.push((await outcome(auth.exchangeToken({ jwt: "x" }))).code);
    expect(codes.slice(0, 2)).toEqual([Code.Unauthenticated, Code.Unauthenticated]);
    expect(codes.slice(2)).toContain(Code.ResourceExhausted);
  });
});

describe("ExchangeToken in the JSON-lines audit log", () => {
  it("copies the issuer, subject, binding, token and reason, never the JWT", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "coffer-exchange-audit-"));
    const issuer = await startOidcIssuer();
    const s = await startInMemoryServer({ auditLog: path.join(dir, "audit.jsonl") });
    try {
      const { bindingId } = await trustTestIssuer(s.adminClient("connect", s.adminToken), issuer, {
        grants: [{ projectId: PROJECT, role: Role.READ_ONLY, pathPrefix: "/" }],
      });
      const accepted = await issuer.sign();
      const refused = await issuer.sign({ claims: { aud: "elsewhere" } });
      const ok = await s.authClient("grpc").exchangeToken({ jwt: accepted });
      await outcome(s.authClient("grpc").exchangeToken({ jwt: refused }));
      await s.stop();
      const text = await readFile(path.join(dir, "audit.jsonl"), "utf8");
      const lines = text
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.method === METHOD);
      expect(lines).toEqual([
        expect.objectContaining({
          outcome: "OK",
          issuer: issuer.url,
          subject: "test-subject",
          binding_id: bindingId,
          target_token_id: ok.token?.id,
        }),
        expect.objectContaining({
          outcome: "UNAUTHENTICATED",
          issuer: issuer.url,
          subject: "test-subject",
          reason: "audience not accepted",
        }),
      ]);
      for (const jwt of [accepted, refused]) expect(text).not.toContain(jwt.split(".")[2]);
    } finally {
      await s.stop();
      await issuer.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
