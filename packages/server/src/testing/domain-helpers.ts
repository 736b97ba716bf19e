import { randomBytes } from "node:crypto";
import { type SQL, sql } from "drizzle-orm";
import { expect } from "vitest";
import type { Database, Db } from "../db/client.ts";
import { rowsOf } from "../db/raw-sql.ts";
import type { Caller } from "../domain/caller.ts";
import type { DomainDeps } from "../domain/context.ts";
import { type CreateSecretInput, createSecret } from "../domain/create-secret.ts";
import { type CreateVersionInput, createVersion } from "../domain/create-version.ts";
import { DomainError, type DomainErrorKind } from "../domain/errors.ts";
import { ADMIN_CALLER, type Backend, ensureProjects, PROJECT, testDomain } from "./backends.ts";

/**
 * Helpers for the domain integration tests (`src/domain/*.int.test.ts`): they
 * call the real domain functions over real databases, so these only build
 * inputs and check what a caller would observe.
 */

export const caller: Caller = { ...ADMIN_CALLER, requestId: "int-test" };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const utf8 = (text: string): Uint8Array => encoder.encode(text);
export const textOf = (data: Uint8Array): string => decoder.decode(data);

/** A short random suffix, so tests sharing a database never collide on names. */
export const unique = (prefix = "s"): string => `${prefix}-${randomBytes(5).toString("hex")}`;

/**
 * Awaits a promise that must fail with a DomainError of `kind` whose message
 * contains every fragment; returns the error for further checks.
 */
export async function expectDomainError(
  promise: Promise<unknown>,
  kind: DomainErrorKind,
  ...fragments: (string | RegExp)[]
): Promise<DomainError> {
  let caught: unknown;
  let failed = false;
  try {
    await promise;
  } catch (err) {
    caught = err;
    failed = true;
  }
  if (!failed) throw new Error(`expected a ${kind} DomainError, but the call succeeded`);
  expect(caught).toBeInstanceOf(DomainError);
  const error = caught as DomainError;
  expect({ kind: error.kind, message: error.message }).toMatchObject({ kind });
  for (const fragment of fragments) expect(error.message).toMatch(fragment);
  return error;
}

/** Like expectDomainError for invalid_argument: the error and its message name `field`. */
export async function expectInvalid(
  promise: Promise<unknown>,
  field: string,
  ...fragments: (string | RegExp)[]
): Promise<DomainError> {
  const error = await expectDomainError(promise, "invalid_argument", ...fragments);
  expect(error.field).toBe(field);
  expect(error.message.startsWith(`${field}: `)).toBe(true);
  return error;
}

/** A create request with defaults: an opaque secret at `/` in PROJECT, with a unique name. */
export function secretInput(overrides: Partial<CreateSecretInput> = {}): CreateSecretInput {
  return {
    region: "",
    projectId: PROJECT,
    name: unique(),
    path: "/",
    type: "opaque",
    description: "",
    tags: [],
    protected: false,
    ...overrides,
  };
}

/** Creates a secret, by default with a first version holding `payload`. */
export async function newSecret(
  domain: DomainDeps,
  overrides: Partial<CreateSecretInput> = {},
  payload: string | null = "first payload",
) {
  // The project a test names exists, unless the test means an invalid id.
  if (overrides.projectId !== undefined && /^[0-9a-f-]{36}$/i.test(overrides.projectId)) {
    await ensureProjects(domain, overrides.projectId);
  }
  return createSecret(
    domain,
    caller,
    secretInput({
      ...(payload !== null && { firstVersion: { data: utf8(payload), description: "" } }),
      ...overrides,
    }),
  );
}

/** Adds an enabled version with `payload` to a secret. */
export function addVersion(
  domain: DomainDeps,
  secretId: string,
  payload: string,
  overrides: Partial<CreateVersionInput> = {},
) {
  return createVersion(domain, caller, {
    region: "",
    secretId,
    data: utf8(payload),
    description: "",
    enabled: true,
    disablePrevious: false,
    etag: "",
    ...overrides,
  });
}

/** Runs raw SQL and returns its rows, whichever driver. */
export async function query<T>(db: Db, statement: SQL): Promise<T[]> {
  return rowsOf<T>(await db.execute(statement));
}

/**
 * Moves a version's expiry into the past, as if its time to live had run
 * out, without waiting for the clock.
 */
export async function expireNow(db: Db, secretId: string, revision: number): Promise<void> {
  await db.execute(
    sql`update secret_versions set expires_at = now() - interval '1 second' where secret_id = ${secretId} and revision = ${revision}`,
  );
}

/**
 * Opens fresh databases for a test file: `open()` in beforeAll, `close()` in
 * afterAll. `regions` names one database each; the first is the default.
 */
export function databasesFor(backend: Backend, regions: string[] = ["test-region"]) {
  const opened: Record<string, Database> = {};
  return {
    async open(options: { deletionWindowMs?: number } = {}) {
      for (const region of regions) opened[region] = await backend.open();
      return testDomain(opened, options);
    },
    database(region = regions[0] ?? ""): Database {
      const database = opened[region];
      if (database === undefined) throw new Error(`region ${region} is not open`);
      return database;
    },
    db(region = regions[0] ?? ""): Db {
      return this.database(region).db;
    },
    async close() {
      await Promise.all(Object.values(opened).map((d) => d.close()));
    },
  };
}
