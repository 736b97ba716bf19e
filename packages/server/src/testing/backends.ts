import { randomBytes, randomUUID } from "node:crypto";
import pino from "pino";
import postgres from "postgres";
import {
  type Config,
  DEFAULT_ACCESS_BATCH_MAX,
  DEFAULT_CONNECTION_LIMITS,
  type RegionDatabase,
} from "../config.ts";
import { generateKey, type KeyRing } from "../crypto/key-ring.ts";
import { generateScalewayKey, generateToken } from "../crypto/tokens.ts";
import { type AccessBatching, AccessQueues } from "../db/access-queue.ts";
import { type Database, type Db, openDatabase } from "../db/client.ts";
import { migrate } from "../db/migrate.ts";
import { projects, tokens } from "../db/schema.ts";
import type { Caller, Grant, Principal } from "../domain/caller.ts";
import { type DomainDeps, type DomainLimits, Regions } from "../domain/context.ts";
import { type RunningServer, startServer } from "../server.ts";
import { pgliteTemplate, postgresTemplate } from "./templates.ts";

/**
 * The databases every integration test runs against: PGlite (in memory)
 * always, and Postgres whenever TEST_DATABASE_URL is set. Under CI a missing
 * TEST_DATABASE_URL is an error, so the Postgres suite cannot be skipped
 * silently.
 */
export interface Backend {
  name: "pglite" | "postgres";
  /** A fresh database, migrated, with PROJECT and OTHER_PROJECT and nothing else. */
  open(): Promise<Database>;
  /** The URL of a fresh database as open() makes it (Postgres only), for servers that open their own. */
  freshUrl?: () => Promise<string>;
}

const testDatabaseUrl = process.env.TEST_DATABASE_URL;
if (process.env.CI && !testDatabaseUrl) {
  throw new Error(
    "CI is set but TEST_DATABASE_URL is not: the Postgres suite must run in CI (.ci/run sets it)",
  );
}

/** Drops a database made by createPostgresDatabase. */
export async function dropPostgresDatabase(url: string): Promise<void> {
  if (!testDatabaseUrl) return;
  const name = new URL(url).pathname.slice(1);
  if (!/^coffer_test_[0-9a-f]+$/.test(name)) throw new Error(`refusing to drop ${name}`);
  const admin = postgres(testDatabaseUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
  } finally {
    await admin.end();
  }
}

/**
 * Creates a database on the test server, a copy of the run's template
 * (templates.ts), or else empty, migrated and seeded, and returns its URL.
 */
async function createPostgresDatabase(): Promise<string> {
  if (!testDatabaseUrl) throw new Error("TEST_DATABASE_URL is not set");
  const name = `coffer_test_${randomBytes(6).toString("hex")}`;
  const template = postgresTemplate();
  const admin = postgres(testDatabaseUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(
      template === undefined
        ? `create database ${name}`
        : `create database ${name} template ${template}`,
    );
  } finally {
    await admin.end();
  }
  const url = new URL(testDatabaseUrl);
  url.pathname = `/${name}`;
  if (template === undefined) {
    const db = await openDatabase({ driver: "postgres", url: url.toString(), poolSize: 1 });
    try {
      await prepareDatabase(db.db);
    } finally {
      await db.close();
    }
  }
  return url.toString();
}

/**
 * What a test database holds when its test starts, and so what a template
 * holds: every migration, and the projects every test knows.
 */
export async function prepareDatabase(db: Db): Promise<void> {
  await migrate(db);
  await seedProjects(db);
}

/**
 * An in-memory PGlite target, made from the run's template when there is one
 * (templates.ts), for configs that name their own regions.
 */
export function memoryDatabase(): RegionDatabase {
  return { driver: "pglite", dataDir: undefined, template: pgliteTemplate() };
}

export const backends: Backend[] = [
  {
    name: "pglite",
    async open() {
      const template = pgliteTemplate();
      const db = await openDatabase({ driver: "pglite", dataDir: undefined, template });
      if (template === undefined) await prepareDatabase(db.db);
      return db;
    },
  },
  ...(testDatabaseUrl
    ? [
        {
          name: "postgres" as const,
          async open(): Promise<Database> {
            const url = await createPostgresDatabase();
            const db = await openDatabase({ driver: "postgres", url, poolSize: 10 });
            return {
              ...db,
              close: async () => {
                await db.close();
                await dropPostgresDatabase(url);
              },
            };
          },
          freshUrl: createPostgresDatabase,
        },
      ]
    : []),
];

export const postgresBackend = backends.find((b) => b.name === "postgres");

export function testKeyRing(): KeyRing {
  return { activeId: "test-1", keys: new Map([["test-1", generateKey()]]) };
}

/** A domain over one database per region (the first region is the default). */
export function testDomain(
  databases: Record<string, Database>,
  options: {
    keyRing?: KeyRing;
    deletionWindowMs?: number;
    limits?: Partial<DomainLimits>;
    accessBatching?: AccessBatching;
  } = {},
): DomainDeps {
  const ring = options.keyRing ?? testKeyRing();
  return {
    regions: new Regions(new Map(Object.entries(databases))),
    announce: () => {},
    keyRing: () => ring,
    deletionWindowMs: options.deletionWindowMs ?? 7 * 86_400_000,
    watchRetentionMs: 86_400_000,
    limits: { secretsPerProject: 10_000, versionsPerSecret: 1_000, ...options.limits },
    accessQueues: new AccessQueues(options.accessBatching ?? { max: DEFAULT_ACCESS_BATCH_MAX }),
  };
}

export const silentLogger = pino({ level: "silent" });

/** A Config for an in-process server on free ports. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  const key = generateKey().toString("base64");
  return {
    grpcListen: { host: "127.0.0.1", port: 0 },
    httpListen: { host: "127.0.0.1", port: 0 },
    regions: ["local"],
    databases: { local: memoryDatabase() },
    dataDir: "/nonexistent",
    masterKeys: `test-1:${key}`,
    // Quiet, and known to the test: no admin token banner on every start.
    bootstrapToken: generateToken().value,
    masterKeyFile: undefined,
    deletionWindowMs: 7 * 86_400_000,
    watchRetentionMs: 86_400_000,
    sweepIntervalMs: 3_600_000,
    shutdownGraceMs: 2_000,
    logLevel: "silent",
    // No rate limit by default: tests make calls faster than any real client.
    limits: { secretsPerProject: 10_000, versionsPerSecret: 1_000, requestsPerSecond: 0 },
    connections: DEFAULT_CONNECTION_LIMITS,
    ...overrides,
  };
}

/** Starts an in-process server, with PROJECT and OTHER_PROJECT created; stop it in afterAll. */
export async function startTestServer(overrides: Partial<Config> = {}): Promise<RunningServer> {
  const server = await startServer(testConfig(overrides), silentLogger);
  await seedProjects(server.domain.regions.resolve("").db);
  return server;
}

export const PROJECT = "0f8fad5b-d9cb-469f-a165-70867728950e";
export const OTHER_PROJECT = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

/**
 * Creates projects (secrets can only be created in a project that exists),
 * by default the two every test knows; ids already there are left alone.
 */
export async function seedProjects(
  db: Db,
  ids: readonly string[] = [PROJECT, OTHER_PROJECT],
): Promise<void> {
  if (ids.length === 0) return;
  await db
    .insert(projects)
    .values(ids.map((id) => ({ id, name: `test-${id}` })))
    .onConflictDoNothing();
}

/** seedProjects on a domain's home database. */
export function ensureProjects(domain: DomainDeps, ...ids: string[]): Promise<void> {
  return seedProjects(domain.regions.resolve("").db, ids);
}

/** A global admin, as the domain sees it, for tests that call domain functions directly. */
export const ADMIN_PRINCIPAL: Principal = {
  tokenId: "00000000-0000-4000-8000-000000000001",
  grants: [{ projectId: "", role: "admin", pathPrefix: "/" }],
};

export const ADMIN_CALLER: Caller = { requestId: "test", principal: ADMIN_PRINCIPAL };

/**
 * Stores ADMIN_PRINCIPAL's token row in a domain's home database, for tests
 * whose admin caller creates tokens (a token records its creator, which must
 * exist and be live).
 */
export async function ensureAdminToken(domain: DomainDeps): Promise<void> {
  const token = generateToken();
  await domain.regions
    .resolve("")
    .db.insert(tokens)
    .values({
      id: ADMIN_PRINCIPAL.tokenId,
      name: "test admin",
      prefix: token.prefix,
      hash: token.hash,
      grants: [...ADMIN_PRINCIPAL.grants],
      expiresAt: null,
    })
    .onConflictDoNothing();
}

/**
 * Stores a token with these grants in a domain's home database and returns
 * its value, for tests that call a running server. With `scaleway`, the
 * token is a Scaleway-style key and the value its secret key.
 */
export async function createTestToken(
  domain: DomainDeps,
  grants: Grant[],
  options: { expiresAt?: Date; name?: string; scaleway?: boolean } = {},
): Promise<{ id: string; value: string }> {
  const token = options.scaleway ? generateScalewayKey() : generateToken();
  const id = randomUUID();
  await domain.regions
    .resolve("")
    .db.insert(tokens)
    .values({
      id,
      name: options.name ?? "test",
      prefix: token.prefix,
      hash: token.hash,
      grants,
      expiresAt: options.expiresAt ?? null,
    });
  return { id, value: token.value };
}
