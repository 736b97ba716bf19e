import { AdminService, AuthService, SecretService } from "@coffer/api";
import {
  createClient,
  createConnectRouter,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import {
  type CommonTransportOptions,
  createUniversalHandlerClient,
} from "@connectrpc/connect/protocol";
import { createTransport as connectTransport } from "@connectrpc/connect/protocol-connect";
import { createTransport as grpcTransport } from "@connectrpc/connect/protocol-grpc";
import { createTransport as grpcWebTransport } from "@connectrpc/connect/protocol-grpc-web";
import type { Logger } from "pino";
import type { Config } from "../config.ts";
import { generateToken } from "../crypto/tokens.ts";
import { routes } from "../rpc/services.ts";
import { peerKey } from "../rpc/transports/peer.ts";
import { type OpenServer, openServer } from "../server.ts";
import {
  dropPostgresDatabase,
  ensureProjects,
  OTHER_PROJECT,
  PROJECT,
  postgresBackend,
  silentLogger,
  testConfig,
} from "./backends.ts";
import type { Protocol, ServerUnderTest, ServerUnderTestBackend } from "./clients.ts";

/**
 * The in-memory tier: the server as startServer builds it (openServer: the
 * databases, the call chain, the limits, audit, the watch feeds, the
 * sweeper), called through real clients without a port. Each call goes
 * through the services' routes in memory, encoded in the protocol the client
 * speaks. For the RPC tests of what the services do; what a transport does
 * (grpc-js, connect-node, TLS, connection limits, HTTP GET, raw bodies) is
 * tested over a real port (rpc-servers.ts).
 */

/** A server without ports, in the shape of rpc-servers.ts's TestServer. */
export type InMemoryServer = ServerUnderTest<OpenServer>;

/** Starts an in-memory server on one test backend. */
export type InMemoryBackend = ServerUnderTestBackend<InMemoryServer>;

/**
 * The peer every in-memory call comes from: a transport sets the client's
 * address (peerKey), which the audit trail records and the per-address
 * limit counts. A caller in the same process is on the loopback; port 0
 * says that no socket carried the call.
 */
export const IN_MEMORY_PEER = "127.0.0.1:0";

const setPeer: Interceptor = (next) => (req) => {
  req.contextValues.set(peerKey, IN_MEMORY_PEER);
  return next(req);
};

const protocols: Record<Protocol, (options: CommonTransportOptions) => Transport> = {
  connect: connectTransport,
  grpc: grpcTransport,
  "grpc-web": grpcWebTransport,
};

function inMemory(
  server: OpenServer,
  adminToken: string,
  cleanup: () => Promise<void>,
): InMemoryServer {
  const router = createConnectRouter({ interceptors: [setPeer] });
  routes(server.services)(router);
  const httpClient = createUniversalHandlerClient(router.handlers);
  const transport = (protocol: Protocol, token: string | undefined) =>
    protocols[protocol]({
      httpClient,
      baseUrl: "http://in-memory",
      useBinaryFormat: true,
      interceptors:
        token === undefined
          ? []
          : [
              (next) => (req) => {
                req.header.set("authorization", `Bearer ${token}`);
                return next(req);
              },
            ],
      acceptCompression: [],
      sendCompression: null,
      compressMinBytes: Number.MAX_SAFE_INTEGER,
      readMaxBytes: Number.MAX_SAFE_INTEGER,
      writeMaxBytes: Number.MAX_SAFE_INTEGER,
    });
  let stopped: Promise<void> | undefined;
  return {
    server,
    adminToken,
    stop: () => {
      stopped ??= server.stop().then(cleanup);
      return stopped;
    },
    client: (protocol, token) => createClient(SecretService, transport(protocol, token)),
    adminClient: (protocol, token) => createClient(AdminService, transport(protocol, token)),
    authClient: (protocol) => createClient(AuthService, transport(protocol, undefined)),
  };
}

/**
 * Opens an in-memory server on PGlite, with PROJECT and OTHER_PROJECT; the
 * counterpart of startTestServer. Stop it in afterAll.
 */
export async function startInMemoryServer(
  overrides: Partial<Config> = {},
  logger: Logger = silentLogger,
): Promise<InMemoryServer> {
  const bootstrapToken = overrides.bootstrapToken ?? generateToken().value;
  const server = await openServer(testConfig({ ...overrides, bootstrapToken }), logger);
  await ensureProjects(server.domain, PROJECT, OTHER_PROJECT);
  return inMemory(server, bootstrapToken, async () => {});
}

const freshPostgresUrl = postgresBackend?.freshUrl;

/** In-memory servers on each test backend, as rpc-servers.ts's serverBackends. */
export const inMemoryBackends: InMemoryBackend[] = [
  { name: "pglite", start: startInMemoryServer },
  ...(freshPostgresUrl
    ? [
        {
          name: "postgres" as const,
          async start(overrides: Partial<Config> = {}, logger: Logger = silentLogger) {
            const url = await freshPostgresUrl();
            const bootstrapToken = overrides.bootstrapToken ?? generateToken().value;
            const server = await openServer(
              testConfig({
                ...overrides,
                bootstrapToken,
                databases: { local: { driver: "postgres", url, poolSize: 5 } },
              }),
              logger,
            ).catch(async (err) => {
              await dropPostgresDatabase(url);
              throw err;
            });
            await ensureProjects(server.domain, PROJECT, OTHER_PROJECT);
            return inMemory(server, bootstrapToken, () => dropPostgresDatabase(url));
          },
        },
      ]
    : []),
];
