import { randomUUID } from "node:crypto";
import { Role, type UpdateTrustedIssuerRequest } from "@coffer/api";
import { Code, ConnectError } from "@connectrpc/connect";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents } from "../db/schema.ts";
import { createTestToken, PROJECT } from "../testing/backends.ts";
import type { AdminClient } from "../testing/clients.ts";
import { type InMemoryServer, inMemoryBackends } from "../testing/in-memory-server.ts";
import { startOidcIssuer, type TestOidcIssuer, trustTestIssuer } from "../testing/oidc-issuer.ts";

// AdminService.UpdateTrustedIssuer: an issuer changed in place (a rotated
// static key, another audience, another key source) takes effect at the
// next exchange, while its bindings and the tokens already exchanged stay.

type UpdateInit = Partial<Pick<UpdateTrustedIssuerRequest, "issuerId" | "name" | "keys">> & {
  audiences?: { audiences: string[] };
};

async function outcome(p: Promise<unknown>): Promise<{ code: Code | 0; message: string }> {
  try {
    await p;
    return { code: 0, message: "" };
  } catch (e) {
    const err = ConnectError.from(e);
    return { code: err.code, message: err.rawMessage };
  }
}

const UPDATE = "coffer.admin.v1.AdminService/UpdateTrustedIssuer";

describe.each(inMemoryBackends)("UpdateTrustedIssuer ($name)", (backend) => {
  let s: InMemoryServer;
  let admin: AdminClient;
  let projectAdmin: AdminClient;
  const issuers: TestOidcIssuer[] = [];

  beforeAll(async () => {
    // The default refresh floor (30 s): an update must not wait for it.
    s = await backend.start();
    admin = s.adminClient("connect", s.adminToken);
    projectAdmin = s.adminClient(
      "connect",
      (
        await createTestToken(s.server.domain, [
          { projectId: PROJECT, role: "admin", pathPrefix: "/" },
        ])
      ).value,
    );
  }, 120_000);
  afterAll(async () => {
    await s?.stop();
    for (const i of issuers) await i.close();
  });

  const newIssuer = async (keys: "static" | "jwks_url" | "discovery") => {
    const issuer = await startOidcIssuer();
    issuers.push(issuer);
    const ids = await trustTestIssuer(admin, issuer, {
      grants: [{ projectId: PROJECT, role: Role.READ_ONLY, pathPrefix: "/" }],
      keys,
    });
    return { issuer, ...ids };
  };

  /** The exchange's outcome, and the reason its audit event holds. */
  const exchange = async (jwt: string) => {
    const requestId = randomUUID();
    const got = await outcome(
      s.authClient("connect").exchangeToken({ jwt }, { headers: { "x-request-id": requestId } }),
    );
    const [event] = await s.server.domain.regions
      .resolve("")
      .db.select()
      .from(auditEvents)
      .where(eq(auditEvents.requestId, requestId));
    return { code: got.code, reason: event?.reason ?? null };
  };

  const works = async (token: string) =>
    (await outcome(s.client("connect", token).listSecrets({ projectId: PROJECT }))).code;

  it("takes a rotated set of static keys at once, keeping bindings and tokens", async () => {
    const { issuer, issuerId, bindingId } = await newIssuer("static");
    const oldKid = issuer.keyIds[0] ?? "";
    const before = await s.authClient("connect").exchangeToken({ jwt: await issuer.sign() });

    const newKid = await issuer.addKey();
    issuer.removeKey(oldKid);
    // Not yet: the stored keys are the old ones.
    expect(await exchange(await issuer.sign({ kid: newKid }))).toEqual({
      code: Code.Unauthenticated,
      reason: "unknown key id",
    });

    const updated = await admin.updateTrustedIssuer({
      issuerId,
      keys: { case: "staticJwks", value: JSON.stringify(issuer.publicJwks()) },
    });
    const stored = JSON.parse(String(updated.issuer?.keys.value)) as { keys: { kid: string }[] };
    expect(stored.keys.map((k) => k.kid)).toEqual([newKid]);
    expect(updated.issuer).toMatchObject({ id: issuerId, issuerUrl: issuer.url });

    expect(await exchange(await issuer.sign({ kid: newKid }))).toEqual({ code: 0, reason: null });
    expect(await exchange(await issuer.sign({ kid: oldKid }))).toEqual({
      code: Code.Unauthenticated,
      reason: "unknown key id",
    });
    // The binding and the token exchanged before stay.
    const bindings = await admin.listIdentityBindings({ issuerId });
    expect(bindings.bindings.map((b) => b.id)).toEqual([bindingId]);
    expect(await works(before.value)).toBe(0);
  });

  it("replaces the audiences, and renames", async () => {
    const { issuer, issuerId } = await newIssuer("static");
    const name = `renamed-${randomUUID()}`;
    const updated = await admin.updateTrustedIssuer({
      issuerId,
      name,
      audiences: { audiences: ["coffer-prod", "coffer-prod", "other"] },
    });
    expect(updated.issuer).toMatchObject({ name, audiences: ["coffer-prod", "other"] });
    // The key source was not set: it stays.
    expect(updated.issuer?.keys.case).toBe("staticJwks");
    expect(await exchange(await issuer.sign())).toEqual({
      code: Code.Unauthenticated,
      reason: "audience not accepted",
    });
    expect(await exchange(await issuer.sign({ claims: { aud: "other" } }))).toEqual({
      code: 0,
      reason: null,
    });
    const listed = await admin.listTrustedIssuers({ pageSize: 1000 });
    expect(listed.issuers.find((i) => i.id === issuerId)?.name).toBe(name);
  });

  it("moves from static keys to discovery, and to a JWKS URL", async () => {
    const { issuer, issuerId } = await newIssuer("static");
    // A key the stored set lacks: refused until the keys are fetched.
    const kid = await issuer.addKey();
    expect((await exchange(await issuer.sign({ kid }))).code).toBe(Code.Unauthenticated);
    const discovery = await admin.updateTrustedIssuer({
      issuerId,
      keys: { case: "discovery", value: true },
    });
    expect(discovery.issuer?.keys).toEqual({ case: "discovery", value: true });
    expect(await exchange(await issuer.sign({ kid }))).toEqual({ code: 0, reason: null });
    const fetched = issuer.discoveryFetches;
    expect(fetched).toBeGreaterThan(0);

    const byUrl = await admin.updateTrustedIssuer({
      issuerId,
      keys: { case: "jwksUrl", value: issuer.jwksUrl },
    });
    expect(byUrl.issuer?.keys).toEqual({ case: "jwksUrl", value: issuer.jwksUrl });
    expect(await exchange(await issuer.sign({ kid }))).toEqual({ code: 0, reason: null });
    // Fetched straight from the JWKS URL now, without discovery.
    expect(issuer.discoveryFetches).toBe(fetched);
  });

  it("drops the fetched keys at once on this replica, even for the same JWKS URL", async () => {
    const { issuer, issuerId } = await newIssuer("jwks_url");
    const oldKid = issuer.keyIds[0] ?? "";
    expect((await exchange(await issuer.sign())).code).toBe(0);
    await issuer.addKey();
    issuer.removeKey(oldKid);
    // Cached (COFFER_JWKS_MAX_AGE): the removed key still verifies.
    expect((await exchange(await issuer.sign({ kid: oldKid }))).code).toBe(0);
    await admin.updateTrustedIssuer({
      issuerId,
      keys: { case: "jwksUrl", value: issuer.jwksUrl },
    });
    expect(await exchange(await issuer.sign({ kid: oldKid }))).toEqual({
      code: Code.Unauthenticated,
      reason: "unknown key id",
    });
  });

  it("answers an update that sets nothing with the issuer unchanged", async () => {
    const { issuer, issuerId } = await newIssuer("static");
    const same = await admin.updateTrustedIssuer({ issuerId });
    expect(same.issuer).toMatchObject({
      id: issuerId,
      issuerUrl: issuer.url,
      audiences: [issuer.audience],
      keys: { case: "staticJwks" },
    });
  });

  it("writes one audit event naming the issuer", async () => {
    const { issuer, issuerId } = await newIssuer("static");
    await admin.updateTrustedIssuer({ issuerId, audiences: { audiences: ["a"] } });
    const events = (await admin.listAuditEvents({ method: UPDATE, pageSize: 1000 })).events.filter(
      (e) => e.issuer === issuer.url,
    );
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ outcome: "OK", targetTokenId: "" });
  });

  it.each<[string, Partial<UpdateInit>, string]>([
    ["an empty name", { name: "" }, "name: is required"],
    ["no audience", { audiences: { audiences: [] } }, "audiences: must hold at least one audience"],
    ["an empty audience", { audiences: { audiences: ["ok", ""] } }, "audiences[1]: is required"],
    [
      "discovery false",
      { keys: { case: "discovery", value: false } },
      "discovery: must be true when set",
    ],
    [
      "a JWKS URL over plain http",
      { keys: { case: "jwksUrl", value: "http://10.0.0.1/jwks" } },
      "jwks_url: must be an https:// URL",
    ],
    [
      "static keys that are not JSON",
      { keys: { case: "staticJwks", value: "{keys" } },
      "static_jwks: must be a JWKS document",
    ],
    [
      "a static private key",
      {
        keys: {
          case: "staticJwks",
          value: JSON.stringify({
            keys: [{ kty: "EC", crv: "P-256", x: "a", y: "b", d: "SECRETD" }],
          }),
        },
      },
      'static_jwks: key 1 holds private key material ("d")',
    ],
    ["a malformed issuer id", { issuerId: "x" }, "issuer_id"],
  ])("refuses an update with %s, naming the field", async (_name, over, message) => {
    const { issuerId } = await newIssuer("static");
    const got = await outcome(admin.updateTrustedIssuer({ issuerId, ...over }));
    expect(got.code).toBe(Code.InvalidArgument);
    expect(got.message).toContain(message);
    expect(got.message).not.toContain("SECRETD");
  });

  it("refuses discovery for an issuer URL it may not fetch", async () => {
    const made = await admin.createTrustedIssuer({
      issuer: {
        name: `plain-${randomUUID()}`,
        issuerUrl: `http://${randomUUID()}.example.com`,
        audiences: ["coffer"],
        keys: { case: "staticJwks", value: JSON.stringify((await startIssuer()).publicJwks()) },
      },
    });
    const got = await outcome(
      admin.updateTrustedIssuer({
        issuerId: made.issuer?.id ?? "",
        keys: { case: "discovery", value: true },
      }),
    );
    expect(got.code).toBe(Code.InvalidArgument);
    expect(got.message).toContain("discovery: cannot be chosen");
    expect(got.message).toContain("must be an https:// URL");
  });

  it("refuses a name in use, an unknown issuer, and any caller but a global admin", async () => {
    const a = await newIssuer("static");
    const b = await newIssuer("static");
    const taken = (await admin.listTrustedIssuers({ pageSize: 1000 })).issuers.find(
      (i) => i.id === b.issuerId,
    )?.name;
    expect(
      (await outcome(admin.updateTrustedIssuer({ issuerId: a.issuerId, name: taken }))).code,
    ).toBe(Code.AlreadyExists);
    expect(
      (await outcome(admin.updateTrustedIssuer({ issuerId: randomUUID(), name: "x" }))).code,
    ).toBe(Code.NotFound);
    expect(
      (await outcome(projectAdmin.updateTrustedIssuer({ issuerId: a.issuerId, name: "x" }))).code,
    ).toBe(Code.PermissionDenied);
  });

  async function startIssuer(): Promise<TestOidcIssuer> {
    const issuer = await startOidcIssuer();
    issuers.push(issuer);
    return issuer;
  }
});
