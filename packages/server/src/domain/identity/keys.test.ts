import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TrustedIssuerRow } from "../../db/schema.ts";
import { startOidcIssuer, type TestOidcIssuer } from "../../testing/oidc-issuer.ts";
import { fetchableUrlProblem, isLoopbackHost } from "./fetch.ts";
import { JwtRefusal, verifyJwt } from "./jwt.ts";
import { KeyCache } from "./keys.ts";

// The key cache against a real issuer on the loopback, its clock driven by
// the test: rotation, removal within the max age, and the refresh floor.

function row(
  issuer: TestOidcIssuer,
  source: "discovery" | "jwks_url" = "discovery",
): TrustedIssuerRow {
  return {
    id: `00000000-0000-4000-8000-${Math.random().toString(16).slice(2, 14).padEnd(12, "0")}`,
    name: "test",
    issuerUrl: issuer.url,
    audiences: [issuer.audience],
    keySource: source,
    jwksUrl: source === "jwks_url" ? issuer.jwksUrl : null,
    staticJwks: null,
    createdAt: new Date(),
    createdBy: null,
  };
}

async function reasonOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof JwtRefusal) return e.reason;
    throw e;
  }
  return "accepted";
}

describe("the trusted issuers' key cache", () => {
  let issuer: TestOidcIssuer;
  beforeAll(async () => {
    issuer = await startOidcIssuer();
  });
  afterAll(() => issuer.close());

  const clock = () => {
    let t = Date.now();
    return { now: () => t, advance: (ms: number) => (t += ms) };
  };

  it("picks up a key the issuer adds and signs with, once the floor allows a refresh", async () => {
    const c = clock();
    const keys = new KeyCache({ maxAgeMs: 600_000, refreshFloorMs: 30_000, now: c.now });
    const iss = row(issuer);
    const verify = (jwt: string) => reasonOf(verifyJwt(jwt, async () => iss, keys, c.now));
    expect(await verify(await issuer.sign())).toBe("accepted");
    const fetched = issuer.jwksFetches;
    const kid = await issuer.addKey("ES256");
    const rotated = await issuer.sign({ kid });
    // Within the floor of the first fetch: not fetched again.
    expect(await verify(rotated)).toBe("unknown key id");
    expect(issuer.jwksFetches).toBe(fetched);
    c.advance(30_000);
    expect(await verify(rotated)).toBe("accepted");
    expect(issuer.jwksFetches).toBe(fetched + 1);
    // The old key still verifies: it is still published.
    expect(await verify(await issuer.sign({ kid: issuer.keyIds[0] }))).toBe("accepted");
  });

  it("uses an updated issuer's keys at once, on a replica never told of the update", async () => {
    // Every exchange reads the issuer's row: a cache keyed by what the row
    // says (not only its id) sees an update without a message or a wait.
    const c = clock();
    const keys = new KeyCache({ maxAgeMs: 600_000, refreshFloorMs: 30_000, now: c.now });
    const other = await startOidcIssuer();
    try {
      const old = issuer.keyIds[0] ?? "";
      let iss: TrustedIssuerRow = {
        ...row(issuer),
        keySource: "static",
        staticJwks: issuer.publicJwks() as TrustedIssuerRow["staticJwks"],
      };
      const verify = async (jwt: string) => reasonOf(verifyJwt(jwt, async () => iss, keys, c.now));
      expect(await verify(await issuer.sign({ kid: old }))).toBe("accepted");
      // Static keys replaced: the new set only.
      iss = { ...iss, staticJwks: other.publicJwks() as TrustedIssuerRow["staticJwks"] };
      const byOther = () => other.sign({ claims: { iss: issuer.url, aud: issuer.audience } });
      expect(await verify(await byOther())).toBe("accepted");
      expect(await verify(await issuer.sign({ kid: old }))).toBe("unknown key id");
      // Static keys to a JWKS URL, then to another: fetched from the URL now named.
      iss = { ...iss, keySource: "jwks_url", jwksUrl: issuer.jwksUrl, staticJwks: null };
      expect(await verify(await issuer.sign({ kid: old }))).toBe("accepted");
      iss = { ...iss, jwksUrl: other.jwksUrl };
      expect(await verify(await byOther())).toBe("accepted");
      expect(await verify(await issuer.sign({ kid: old }))).toBe("unknown key id");
    } finally {
      await other.close();
    }
  });

  it("stops accepting a key removed at the issuer once the max age has passed", async () => {
    const c = clock();
    const keys = new KeyCache({ maxAgeMs: 2_000, refreshFloorMs: 30_000, now: c.now });
    const iss = row(issuer, "jwks_url");
    const verify = (jwt: string) => reasonOf(verifyJwt(jwt, async () => iss, keys, c.now));
    const kid = await issuer.addKey("EdDSA");
    const jwt = await issuer.sign({ kid });
    expect(await verify(jwt)).toBe("accepted");
    issuer.removeKey(kid);
    // Still cached: within the documented bound.
    c.advance(1_000);
    expect(await verify(jwt)).toBe("accepted");
    c.advance(1_001);
    expect(await verify(jwt)).toBe("unknown key id");
  });

  it("bounds a flood of unknown key ids to one fetch per floor", async () => {
    const c = clock();
    const keys = new KeyCache({ maxAgeMs: 600_000, refreshFloorMs: 30_000, now: c.now });
    const iss = row(issuer);
    const verify = (jwt: string) => reasonOf(verifyJwt(jwt, async () => iss, keys, c.now));
    expect(await verify(await issuer.sign())).toBe("accepted");
    const before = issuer.jwksFetches;
    // The issuer's signature under a made-up key id: 200 distinct unknown kids.
    const [, payload, sig] = (await issuer.sign()).split(".");
    const flood = Array.from({ length: 200 }, (_, i) => {
      const header = Buffer.from(JSON.stringify({ alg: "RS256", kid: `made-up-${i}` })).toString(
        "base64url",
      );
      return `${header}.${payload}.${sig}`;
    });
    const reasons = await Promise.all(flood.map(verify));
    expect(new Set(reasons)).toEqual(new Set(["unknown key id"]));
    expect(issuer.jwksFetches).toBe(before);
    c.advance(30_000);
    const again = await Promise.all(flood.map(verify));
    expect(new Set(again)).toEqual(new Set(["unknown key id"]));
    // One refresh for the 200 (shared while in flight), none more within the floor.
    expect(issuer.jwksFetches).toBe(before + 1);
  });

  it("refuses with the fetch's reason when the issuer cannot be reached, and retries no sooner than the floor", async () => {
    const gone = await startOidcIssuer();
    const jwt = await gone.sign();
    const iss = row(gone);
    await gone.close();
    const c = clock();
    const failures: string[] = [];
    const keys = new KeyCache({
      refreshFloorMs: 30_000,
      now: c.now,
      onFetchFailed: (_issuer, reason) => failures.push(reason),
    });
    const verify = () => reasonOf(verifyJwt(jwt, async () => iss, keys, c.now));
    expect(await verify()).toBe("keys unavailable: key fetch failed (network)");
    expect(await verify()).toBe("keys unavailable: key fetch failed (network)");
    // One fetch, one failure reported: the second call was within the floor.
    expect(failures).toEqual(["key fetch failed (network)"]);
  });
});

describe("discovery", () => {
  it("refuses a discovery document that names another issuer", async () => {
    const issuer = await startOidcIssuer();
    try {
      // Trusted as ".../" while the issuer calls itself "...": not the same issuer.
      const iss = { ...row(issuer), issuerUrl: `${issuer.url}/` };
      const jwt = await issuer.sign({ claims: { iss: iss.issuerUrl } });
      const reason = await reasonOf(verifyJwt(jwt, async () => iss, new KeyCache()));
      expect(reason).toBe("keys unavailable: the discovery document names another issuer");
      expect(issuer.jwksFetches).toBe(0);
    } finally {
      await issuer.close();
    }
  });
});

describe("the URLs Coffer fetches keys from", () => {
  it.each([
    ["https://token.actions.githubusercontent.com", undefined],
    ["http://127.0.0.1:8080", undefined],
    ["http://127.1.2.3/jwks", undefined],
    ["http://localhost:1234", undefined],
    ["http://[::1]:1234/jwks", undefined],
    ["http://example.com", "must be an https:// URL"],
    ["http://10.0.0.1", "must be an https:// URL"],
    ["ftp://example.com", "must be an https:// URL"],
    ["https://user:pw@example.com", "must not hold a user name or password"],
    ["https://example.com/#x", "must not hold a fragment"],
    ["example.com", "must be an absolute URL"],
  ])("%s", (url, problem) => {
    const found = fetchableUrlProblem(url);
    if (problem === undefined) expect(found).toBeUndefined();
    else expect(found).toContain(problem);
  });

  it("knows the loopback hosts", () => {
    expect(["127.0.0.1", "127.255.0.9", "::1", "[::1]", "localhost"].every(isLoopbackHost)).toBe(
      true,
    );
    expect(
      ["128.0.0.1", "127.0.0.1.example.com", "::2", "localhost.example"].some(isLoopbackHost),
    ).toBe(false);
  });
});
