import { sql } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  generateToken,
  hashToken,
  isWellFormedToken,
  tokenFromSecret,
} from "../../crypto/tokens.ts";
import { type Database, openDatabase } from "../../db/client.ts";
import { migrate } from "../../db/migrate.ts";
import { backends, dropPostgresDatabase, postgresBackend } from "../../testing/backends.ts";
import { query } from "../../testing/domain-helpers.ts";
import { runUnless } from "../../testing/skip.ts";
import { BOOTSTRAP_TOKEN_NAME, bootstrapAdminToken } from "./bootstrap.ts";

interface Row {
  name: string;
  hash: Uint8Array;
  grants: unknown;
  revoked_at: Date | null;
  expires_at: Date | null;
}

const tokensIn = (database: Database) =>
  query<Row>(database.db, sql`select name, hash, grants, revoked_at, expires_at from tokens`);

describe.each(backends)("bootstrap admin token on $name", (backend) => {
  let database: Database;
  beforeAll(async () => {
    database = await backend.open();
  });
  afterAll(() => database.close());
  beforeEach(async () => {
    await database.db.execute(sql`delete from tokens`);
  });

  it("creates one global admin token on an empty table and returns its value once", async () => {
    const value = await bootstrapAdminToken(database.db, {});
    expect(value).toBeDefined();
    expect(isWellFormedToken(value ?? "")).toBe(true);
    const rows = await tokensIn(database);
    expect(rows).toHaveLength(1);
    const [row] = rows;
    expect(row?.name).toBe(BOOTSTRAP_TOKEN_NAME);
    expect(row?.grants).toEqual([{ projectId: "", role: "admin", pathPrefix: "/" }]);
    expect(row?.revoked_at).toBeNull();
    expect(row?.expires_at).toBeNull();
    expect(Buffer.from(row?.hash ?? []).equals(Buffer.from(hashToken(value ?? "")))).toBe(true);

    expect(await bootstrapAdminToken(database.db, {})).toBeUndefined();
    expect(await tokensIn(database)).toHaveLength(1);
  });

  it("takes the value from COFFER_BOOTSTRAP_TOKEN, and ignores it once tokens exist", async () => {
    const { value } = generateToken();
    expect(await bootstrapAdminToken(database.db, { fromEnv: value })).toBe(value);
    const [row] = await tokensIn(database);
    expect(Buffer.from(row?.hash ?? []).equals(Buffer.from(hashToken(value)))).toBe(true);
    expect(
      await bootstrapAdminToken(database.db, { fromEnv: generateToken().value }),
    ).toBeUndefined();
    expect(await tokensIn(database)).toHaveLength(1);
  });

  it("refuses a malformed COFFER_BOOTSTRAP_TOKEN, naming the setting but not the value", async () => {
    const bad = `${generateToken().value.slice(0, -1)}!`;
    const err = await bootstrapAdminToken(database.db, { fromEnv: bad }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain("COFFER_BOOTSTRAP_TOKEN");
    expect((err as Error).message).not.toContain(bad.slice(7, 20));
    expect(await tokensIn(database)).toHaveLength(0);
  });

  it("refuses a guessable COFFER_BOOTSTRAP_TOKEN (all-zero secret, valid checksum)", async () => {
    const zero = tokenFromSecret(new Uint8Array(32)).value;
    const err = await bootstrapAdminToken(database.db, { fromEnv: zero }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain("COFFER_BOOTSTRAP_TOKEN: is not random enough");
    expect((err as Error).message).not.toContain("0000");
    expect(await tokensIn(database)).toHaveLength(0);
  });

  it("creates nothing while any token exists, even only a revoked one", async () => {
    await bootstrapAdminToken(database.db, {});
    await database.db.execute(sql`update tokens set revoked_at = now()`);
    expect(await bootstrapAdminToken(database.db, {})).toBeUndefined();
    expect(await tokensIn(database)).toHaveLength(1);
  });
});

const onPostgres = runUnless(postgresBackend ? undefined : "needs TEST_DATABASE_URL (Postgres)");

describe("bootstrap on postgres, replicas starting together", onPostgres, () => {
  let url: string;
  const replicas: Database[] = [];
  beforeAll(async () => {
    url = (await postgresBackend?.freshUrl?.()) ?? "";
    for (let i = 0; i < 4; i++) {
      replicas.push(await openDatabase({ driver: "postgres", url, poolSize: 2 }));
    }
    await migrate(replicas[0]?.db ?? (undefined as never));
  });
  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.close()));
    await dropPostgresDatabase(url);
  });

  it("creates exactly one token between them, every time", async () => {
    const [first] = replicas;
    if (first === undefined) throw new Error("no replica");
    for (let round = 0; round < 10; round++) {
      await first.db.execute(sql`delete from tokens`);
      const values = await Promise.all(replicas.map((r) => bootstrapAdminToken(r.db, {})));
      expect(values.filter((v) => v !== undefined)).toHaveLength(1);
      expect(await tokensIn(first)).toHaveLength(1);
    }
  });
});
