import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateScalewayKey, generateToken, tokenFromSecret } from "../crypto/tokens.ts";
import { backends, createTestToken } from "../testing/backends.ts";
import { databasesFor, expectDomainError } from "../testing/domain-helpers.ts";
import { Authenticator, presentedPrefix, SECRET_KEY_MARKER } from "./authenticate.ts";
import type { DomainDeps } from "./context.ts";

const bearer = (value: string) => `Bearer ${value}`;

describe.each(backends)("authenticator's caches on $name", (backend) => {
  const dbs = databasesFor(backend, ["home"]);
  let domain: DomainDeps;
  beforeAll(async () => {
    domain = await dbs.open();
  });
  afterAll(() => dbs.close());

  const globalAdmin = () =>
    createTestToken(domain, [{ projectId: "", role: "admin", pathPrefix: "/" }]);

  it("asks the database once for a flood of one revoked or unknown token", async () => {
    const authenticator = new Authenticator(() => dbs.db());
    const { id, value } = await globalAdmin();
    await dbs.db().execute(sql`update tokens set revoked_at = now() where id = ${id}`);
    const unknown = generateToken().value;
    for (let i = 0; i < 50; i++) {
      await expectDomainError(authenticator.authenticate(bearer(value)), "unauthenticated");
      await expectDomainError(authenticator.authenticate(bearer(unknown)), "unauthenticated");
    }
    expect(authenticator.lookups).toBe(2);
    // Malformed values never reach the database at all.
    await expectDomainError(authenticator.authenticate(bearer("coffer_short")), "unauthenticated");
    await expectDomainError(authenticator.authenticate(null), "unauthenticated");
    expect(authenticator.lookups).toBe(2);
  });

  it("counts a token whose lookup is in flight as known, until it is refused", async () => {
    const authenticator = new Authenticator(() => dbs.db());
    const { value } = await globalAdmin();
    const unknown = generateToken().value;
    expect(authenticator.known(bearer(value))).toBe(false);
    const lookup = authenticator.authenticate(bearer(value));
    const refusal = authenticator.authenticate(bearer(unknown));
    // Calls made meanwhile join these lookups: they cost none of their own.
    expect(authenticator.known(bearer(value))).toBe(true);
    expect(authenticator.known(bearer(unknown))).toBe(true);
    expect(authenticator.known(bearer(generateToken().value))).toBe(false);
    await lookup;
    await expectDomainError(refusal, "unauthenticated");
    expect(authenticator.known(bearer(value))).toBe(true);
    expect(authenticator.known(bearer(unknown))).toBe(false);
    expect(authenticator.lookups).toBe(2);
  });

  it("takes a Scaleway-style secret key in any case, as one token", async () => {
    const authenticator = new Authenticator(() => dbs.db());
    const grants = [{ projectId: "", role: "admin" as const, pathPrefix: "/" }];
    const { id, value } = await createTestToken(domain, grants, { scaleway: true });
    expect((await authenticator.authenticate(bearer(value))).tokenId).toBe(id);
    const upper = await authenticator.authenticate(bearer(value.toUpperCase()));
    expect(upper).toMatchObject({ tokenId: id, grants });
    // One cache entry for both spellings: the capitals were not looked up again.
    expect(authenticator.lookups).toBe(1);
    expect(authenticator.cached(bearer(value.toUpperCase()))?.tokenId).toBe(id);
    // An unknown secret key is looked up and refused like an unknown Coffer token.
    await expectDomainError(
      authenticator.authenticate(bearer(generateScalewayKey().value)),
      "unauthenticated",
    );
    expect(authenticator.lookups).toBe(2);
  });

  it("refuses a malformed secret key without a lookup, and never records its characters", async () => {
    const authenticator = new Authenticator(() => dbs.db());
    const { value } = await createTestToken(domain, [], { scaleway: true });
    for (const bad of [
      value.slice(0, -1),
      `${value}0`,
      value.replaceAll("-", ""),
      `{${value}}`,
      `${value.slice(0, 14)}1${value.slice(15)}`,
      `${value.slice(0, 8)}_${value.slice(9)}`,
    ]) {
      await expectDomainError(authenticator.authenticate(bearer(bad)), "unauthenticated");
      expect(presentedPrefix(bearer(bad))).toBeUndefined();
    }
    expect(authenticator.lookups).toBe(0);
    // A well-formed one (known or not) is recorded by a fixed marker only.
    expect(presentedPrefix(bearer(value))).toBe(SECRET_KEY_MARKER);
    expect(presentedPrefix(bearer(value.toUpperCase()))).toBe("uuid");
  });

  it("lets a token created on this replica in at once, though it was refused a moment before", async () => {
    const authenticator = new Authenticator(() => dbs.db());
    // A value fixed in advance, as COFFER_BOOTSTRAP_TOKEN is: presented before it exists.
    const token = tokenFromSecret(randomBytes(32));
    await expectDomainError(authenticator.authenticate(bearer(token.value)), "unauthenticated");
    await createTestToken(domain, []).then(async ({ id }) => {
      await dbs
        .db()
        .execute(
          sql`update tokens set hash = ${Buffer.from(token.hash)}, prefix = ${token.prefix} where id = ${id}`,
        );
    });
    // Another replica, which has not heard of the creation, still refuses it (for REFUSED_CACHE_MS)...
    await expectDomainError(authenticator.authenticate(bearer(token.value)), "unauthenticated");
    // ...this one, told of it, does not.
    authenticator.learnCreated(token.value);
    expect((await authenticator.authenticate(bearer(token.value))).grants).toEqual([]);
  });

  it("keeps a bounded number of refused tokens", async () => {
    const authenticator = new Authenticator(() => dbs.db(), { maxRefused: 20 });
    const values = Array.from({ length: 60 }, () => generateToken().value);
    for (const v of values) {
      await expectDomainError(authenticator.authenticate(bearer(v)), "unauthenticated");
    }
    expect(authenticator.refusedSize).toBe(20);
    expect(authenticator.lookups).toBe(60);
    // The newest are still remembered, the oldest forgotten (asked again).
    await expectDomainError(
      authenticator.authenticate(bearer(values[59] ?? "")),
      "unauthenticated",
    );
    expect(authenticator.lookups).toBe(60);
    await expectDomainError(authenticator.authenticate(bearer(values[0] ?? "")), "unauthenticated");
    expect(authenticator.lookups).toBe(61);
  });

  it("asks again once an answer lapses: a verified token's, a refused token's", async () => {
    const authenticator = new Authenticator(() => dbs.db(), { verifiedMs: 300, refusedMs: 300 });
    const { value } = await globalAdmin();
    const unknown = generateToken().value;
    await authenticator.authenticate(bearer(value));
    await expectDomainError(authenticator.authenticate(bearer(unknown)), "unauthenticated");
    await authenticator.authenticate(bearer(value));
    await expectDomainError(authenticator.authenticate(bearer(unknown)), "unauthenticated");
    expect(authenticator.cached(bearer(value))).toBeDefined();
    expect(authenticator.lookups).toBe(2);
    await sleep(400);
    expect(authenticator.cached(bearer(value))).toBeUndefined();
    // Lapsed, but verified before: not charged to its address's pre-auth limit.
    expect(authenticator.known(bearer(value))).toBe(true);
    await authenticator.authenticate(bearer(value));
    await expectDomainError(authenticator.authenticate(bearer(unknown)), "unauthenticated");
    expect(authenticator.lookups).toBe(4);
  });

  it("serves a verified token no longer than it is valid, then refuses it and no longer knows it", async () => {
    const authenticator = new Authenticator(() => dbs.db());
    const { value } = await createTestToken(
      domain,
      [{ projectId: "", role: "admin", pathPrefix: "/" }],
      { expiresAt: new Date(Date.now() + 400) },
    );
    await authenticator.authenticate(bearer(value));
    expect(authenticator.cached(bearer(value))).toBeDefined();
    await sleep(500);
    // Well within the cache's 2 s, but past the token's expiry.
    expect(authenticator.cached(bearer(value))).toBeUndefined();
    await expectDomainError(authenticator.authenticate(bearer(value)), "unauthenticated");
    expect(authenticator.known(bearer(value))).toBe(false);
  });

  it("forgets a revoked token's lapsed entry too, so that it is no longer known", async () => {
    const authenticator = new Authenticator(() => dbs.db(), { verifiedMs: 50 });
    const { id, value } = await globalAdmin();
    const other = await globalAdmin();
    await authenticator.authenticate(bearer(value));
    await authenticator.authenticate(bearer(other.value));
    await sleep(100);
    expect(authenticator.known(bearer(value))).toBe(true);
    authenticator.forget([id]);
    expect(authenticator.known(bearer(value))).toBe(false);
    expect(authenticator.known(bearer(other.value))).toBe(true);
  });

  it("keeps a bounded number of verified tokens, the least recently used going first", async () => {
    const authenticator = new Authenticator(() => dbs.db(), { maxVerified: 5 });
    const values = await Promise.all(
      Array.from({ length: 6 }, async () => (await globalAdmin()).value),
    );
    const at = (i: number) => bearer(values[i] ?? "");
    for (let i = 0; i < 5; i++) await authenticator.authenticate(at(i));
    // The first is used again, so the second is now the least recently used.
    await authenticator.authenticate(at(0));
    await authenticator.authenticate(at(5));
    expect(authenticator.verifiedSize).toBe(5);
    expect(authenticator.lookups).toBe(6);
    expect(authenticator.known(at(1))).toBe(false);
    await authenticator.authenticate(at(0));
    await authenticator.authenticate(at(5));
    expect(authenticator.lookups).toBe(6);
    await authenticator.authenticate(at(1));
    expect(authenticator.lookups).toBe(7);
  });
});
