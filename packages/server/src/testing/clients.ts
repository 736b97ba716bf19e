import { AdminService, AuthService, SecretService } from "@coffer/api";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import type { Logger } from "pino";
import type { Config } from "../config.ts";

/**
 * Plain connect-es clients for the server's own tests. They are built from
 * the generated service descriptors and connect-node alone, not from
 * `@coffer/client`: the server sits below the client, and its tests must
 * see what any client sees on the wire, without the client's checks,
 * retries or error mapping in between.
 */

/** The protocols the server speaks: gRPC on its gRPC port, Connect and gRPC-Web on its HTTP port. */
export type Protocol = "grpc" | "connect" | "grpc-web";

/** A typed client of every SecretService RPC. */
export type SecretClient = Client<typeof SecretService>;

/** A typed client of every AdminService RPC. */
export type AdminClient = Client<typeof AdminService>;

/** A typed client of AuthService (ExchangeToken needs no token). */
export type AuthClient = Client<typeof AuthService>;

export interface TransportOptions {
  /** The server's base URL: the gRPC port for "grpc", the HTTP port otherwise. */
  url: string;
  /** Defaults to "connect". */
  protocol?: Protocol;
  /** Sent as `authorization: Bearer <token>` when given. */
  token?: string;
  /** For Connect and gRPC-Web: "2" (default) or "1.1". gRPC always uses HTTP/2. */
  httpVersion?: "1.1" | "2";
  timeoutMs?: number;
  /** For an https:// URL: the CAs to trust, and a client certificate and key for mutual TLS. */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer };
  /** Run before the token is set (outermost first). */
  interceptors?: Interceptor[];
}

/** A connect-node transport to a test server. */
export function testTransport(options: TransportOptions): Transport {
  const { token } = options;
  const interceptors = [...(options.interceptors ?? [])];
  if (token !== undefined) {
    interceptors.push((next) => (req) => {
      req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    });
  }
  const common = {
    baseUrl: options.url,
    interceptors,
    ...(options.timeoutMs !== undefined && { defaultTimeoutMs: options.timeoutMs }),
    ...(options.tls !== undefined && { nodeOptions: options.tls }),
  };
  const httpVersion = options.httpVersion ?? "2";
  switch (options.protocol ?? "connect") {
    case "grpc":
      return createGrpcTransport(common);
    case "grpc-web":
      return createGrpcWebTransport({ ...common, httpVersion });
    case "connect":
      return createConnectTransport({ ...common, httpVersion });
  }
}

/** A SecretService client on a test server. */
export function secretClient(options: TransportOptions): SecretClient {
  return createClient(SecretService, testTransport(options));
}

/** An AdminService client on a test server. */
export function adminClient(options: TransportOptions): AdminClient {
  return createClient(AdminService, testTransport(options));
}

/** An AuthService client on a test server. */
export function authClient(options: TransportOptions): AuthClient {
  return createClient(AuthService, testTransport(options));
}

/**
 * A test server and its clients, of either tier: on ports (rpc-servers.ts,
 * `S` a RunningServer) or in memory (in-memory-server.ts, `S` an OpenServer).
 */
export interface ServerUnderTest<S> {
  server: S;
  /** The global admin token the server was bootstrapped with (COFFER_BOOTSTRAP_TOKEN). */
  adminToken: string;
  /** Stops the server and drops its database; safe to call twice. */
  stop(): Promise<void>;
  /** A SecretService client over `protocol`, with `token` when given. */
  client(protocol: Protocol, token?: string): SecretClient;
  /** An AdminService client over `protocol`, with `token` when given. */
  adminClient(protocol: Protocol, token?: string): AdminClient;
  /** An AuthService client over `protocol` (no token: ExchangeToken needs none). */
  authClient(protocol: Protocol): AuthClient;
}

/** Starts a server under test on one backend: PGlite, or Postgres on a fresh database. */
export interface ServerUnderTestBackend<T> {
  name: "pglite" | "postgres";
  start(overrides?: Partial<Config>, logger?: Logger): Promise<T>;
}
