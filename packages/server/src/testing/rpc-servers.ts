import { ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { Config } from "../config.ts";
import { generateToken } from "../crypto/tokens.ts";
import { codeName } from "../rpc/chain.ts";
import { type RunningServer, startServer } from "../server.ts";
import {
  dropPostgresDatabase,
  ensureProjects,
  OTHER_PROJECT,
  PROJECT,
  postgresBackend,
  silentLogger,
  testConfig,
} from "./backends.ts";
import {
  adminClient,
  authClient,
  type Protocol,
  type ServerUnderTest,
  type ServerUnderTestBackend,
  secretClient,
} from "./clients.ts";

/**
 * In-process servers on each test backend, for the RPC tests that go
 * through a real client: PGlite always, Postgres (a fresh database, dropped
 * afterwards) whenever TEST_DATABASE_URL is set.
 */
export type ServerBackend = ServerUnderTestBackend<TestServer>;

export type TestServer = ServerUnderTest<RunningServer>;

function running(
  server: RunningServer,
  adminToken: string,
  cleanup: () => Promise<void>,
): TestServer {
  let stopped: Promise<void> | undefined;
  const url = (protocol: Protocol) =>
    `http://127.0.0.1:${protocol === "grpc" ? server.grpcPort : server.httpPort}`;
  return {
    server,
    adminToken,
    stop: () => {
      stopped ??= server.stop().then(cleanup);
      return stopped;
    },
    client: (protocol, token) =>
      secretClient({ url: url(protocol), protocol, ...(token !== undefined && { token }) }),
    adminClient: (protocol, token) =>
      adminClient({ url: url(protocol), protocol, ...(token !== undefined && { token }) }),
    authClient: (protocol) => authClient({ url: url(protocol), protocol }),
  };
}

/** Overrides with a known bootstrap token, so that no test server prints one. */
function withAdmin(overrides: Partial<Config>): Partial<Config> & { bootstrapToken: string } {
  return { ...overrides, bootstrapToken: overrides.bootstrapToken ?? generateToken().value };
}

const freshPostgresUrl = postgresBackend?.freshUrl;

export const serverBackends: ServerBackend[] = [
  {
    name: "pglite",
    async start(overrides = {}, logger = silentLogger) {
      const config = withAdmin(overrides);
      const server = await startServer(testConfig(config), logger);
      await ensureProjects(server.domain, PROJECT, OTHER_PROJECT);
      return running(server, config.bootstrapToken, async () => {});
    },
  },
  ...(freshPostgresUrl
    ? [
        {
          name: "postgres" as const,
          async start(overrides: Partial<Config> = {}, logger: Logger = silentLogger) {
            const url = await freshPostgresUrl();
            const config = withAdmin(overrides);
            const server = await startServer(
              testConfig({
                ...config,
                databases: { local: { driver: "postgres", url, poolSize: 5 } },
              }),
              logger,
            );
            await ensureProjects(server.domain, PROJECT, OTHER_PROJECT);
            return running(server, config.bootstrapToken, () => dropPostgresDatabase(url));
          },
        },
      ]
    : []),
];

/** What a call ended with, as gRPC names codes ("OK", "NOT_FOUND" ...). */
export interface Outcome<T> {
  code: string;
  message: string;
  response?: T;
  error?: ConnectError;
}

/** Awaits a call and reports its outcome instead of throwing. */
export async function outcomeOf<T>(call: Promise<T>): Promise<Outcome<T>> {
  try {
    return { code: "OK", message: "", response: await call };
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: codeName(e.code), message: e.rawMessage, error: e };
  }
}

/** Runs `fn` over `items` with at most `limit` calls in flight; results keep their order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) {
      results[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Every non-empty byte field anywhere in a response (payloads are the only bytes the API returns). */
export function bytesIn(value: unknown, at = "response"): { path: string; bytes: Uint8Array }[] {
  if (value instanceof Uint8Array) return value.length > 0 ? [{ path: at, bytes: value }] : [];
  if (Array.isArray(value)) return value.flatMap((v, i) => bytesIn(v, `${at}[${i}]`));
  if (value !== null && typeof value === "object") {
    return Object.entries(value).flatMap(([k, v]) => bytesIn(v, `${at}.${k}`));
  }
  return [];
}
