import { readFile } from "node:fs/promises";
import { SecretService } from "@coffer/api";
import {
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import type { CofferClient } from "./client.ts";
import {
  type Coffer,
  type CofferCommonOptions,
  type CofferDefaults,
  cofferInterceptors,
  cofferOver,
} from "./coffer.ts";
import {
  exchangingProvider,
  type JwtExchangeOptions,
  type JwtTokenProvider,
} from "./token-provider.ts";

export * from "@coffer/api";
export * from "./shared.ts";

/** How a client talks to Coffer. */
export type CofferProtocol = "grpc" | "connect" | "grpc-web";

/** Options of {@link createCofferClient} and {@link createCofferTransport}. */
export interface CofferClientOptions extends CofferCommonOptions {
  /**
   * The server's base URL. gRPC goes to the gRPC port (default
   * http://127.0.0.1:50051); Connect and gRPC-Web to the HTTP port (default
   * http://127.0.0.1:8080). Use https:// when the server has TLS on.
   */
  url: string;
  /** Defaults to "connect". */
  protocol?: CofferProtocol;
  /** For Connect and gRPC-Web: "2" (default) or "1.1". gRPC always uses HTTP/2. */
  httpVersion?: "1.1" | "2";
  /** TLS settings for an https:// URL; without them, the system's trusted CAs apply. */
  tls?: CofferTlsOptions;
}

/** Options of {@link createCoffer}: a client's, and the helpers' defaults. */
export interface CofferOptions extends CofferClientOptions, CofferDefaults {}

/** TLS settings of a client, PEM-encoded. */
export interface CofferTlsOptions {
  /**
   * The CAs trusted to sign the server's certificate, replacing the system's
   * (e.g. a private CA's certificate).
   */
  ca?: string | Buffer;
  /**
   * The client's certificate chain, for a server with mutual TLS
   * (`COFFER_TLS_CLIENT_CA`); goes with `key`.
   */
  cert?: string | Buffer;
  /** The private key of `cert`. */
  key?: string | Buffer;
}

/**
 * Creates a typed SecretService client over connect-node: every RPC, as the
 * API defines it. It retries nothing unless `retry` is set.
 *
 * @example
 * const coffer = createCofferClient({ url: "http://127.0.0.1:8080", token });
 * const { secret } = await coffer.createSecret({ projectId, name: "db", path: "/prod" });
 */
export function createCofferClient(options: CofferClientOptions): CofferClient {
  return createClient(SecretService, createCofferTransport(options));
}

/**
 * Creates the client services want: `rpc`, the typed client (retrying
 * idempotent calls on UNAVAILABLE unless `retry: false`), `access` to read a
 * payload by path or id, checksum verified, and `watch` to follow changes
 * with resumption.
 *
 * @example
 * const coffer = createCoffer({ url: "http://127.0.0.1:8080", token, projectId });
 * const db = await coffer.access("/prod/db", { type: SecretType.DATABASE_CREDENTIALS });
 * const { host, port, username, password } = db.json();
 */
export function createCoffer(options: CofferOptions): Coffer {
  const rpc = createCofferClient({ ...options, retry: options.retry ?? true });
  return cofferOver(rpc, options);
}

/**
 * The transport under {@link createCofferClient}, for callers that build
 * their own clients (AdminService, say): the same token, deadline, TLS,
 * checksum check and, when asked for, retries.
 */
export function createCofferTransport(options: CofferClientOptions): Transport {
  // Innermost, so that the retries see the corrected code.
  const interceptors = [...cofferInterceptors(options), connectionLossIsUnavailable];
  const tls = tlsNodeOptions(options);
  const common = {
    baseUrl: options.url,
    interceptors,
    ...(options.timeoutMs !== undefined && { defaultTimeoutMs: options.timeoutMs }),
    ...(tls !== undefined && { nodeOptions: tls }),
  };
  switch (options.protocol ?? "connect") {
    case "grpc":
      return createGrpcTransport(common);
    case "grpc-web":
      return createGrpcWebTransport({ ...common, httpVersion: options.httpVersion ?? "2" });
    case "connect":
      return createConnectTransport({ ...common, httpVersion: options.httpVersion ?? "2" });
  }
}

/** Options of {@link jwtTokenProvider}: where the server is, and where the JWT is. */
export interface JwtTokenProviderOptions
  extends JwtExchangeOptions,
    Partial<Pick<CofferClientOptions, "url" | "protocol" | "httpVersion" | "tls">> {
  /** A transport to reach the server on, instead of `url` (it must add no token of its own). */
  transport?: Transport;
  /** The JWT's file, read again at each exchange (Kubernetes and CI runners rotate it). */
  jwtFile?: string;
  /** A function giving the current JWT, instead of `jwtFile`. */
  jwt?: () => string | Promise<string>;
}

/**
 * A token provider that signs in with a platform's JWT instead of a stored
 * Coffer token: it exchanges the JWT (from `jwtFile`, re-read at each
 * exchange, or from `jwt()`) through `AuthService.ExchangeToken`, caches the
 * short-lived Coffer token and renews it when two thirds of its life have
 * passed. Give it as `token` to {@link createCoffer} or
 * {@link createCofferClient}; see {@link JwtTokenProvider}.
 *
 * @example
 * const token = jwtTokenProvider({
 *   url: "https://coffer.internal:8080",
 *   jwtFile: "/var/run/secrets/coffer/token",
 * });
 * const coffer = createCoffer({ url: "https://coffer.internal:8080", token, projectId });
 */
export function jwtTokenProvider(options: JwtTokenProviderOptions): JwtTokenProvider {
  const { jwtFile, jwt } = options;
  if ((jwtFile === undefined) === (jwt === undefined)) {
    throw new TypeError("jwtTokenProvider needs exactly one of jwtFile or jwt");
  }
  const transport = options.transport ?? exchangeTransport(options);
  return exchangingProvider({
    ...options,
    transport,
    ...(jwtFile !== undefined
      ? {
          jwt: () => readFile(jwtFile, "utf8"),
          jwtSource: `the JWT file ${jwtFile}`,
          readHint:
            "check that the file exists and is readable by this process (in Kubernetes: the projected service-account token volume is mounted there)",
        }
      : { jwt: jwt as () => string | Promise<string>, jwtSource: "the JWT from the jwt option" }),
  });
}

function exchangeTransport(options: JwtTokenProviderOptions): Transport {
  if (options.url === undefined) {
    throw new TypeError("jwtTokenProvider needs url (or transport)");
  }
  return createCofferTransport({
    url: options.url,
    ...(options.protocol !== undefined && { protocol: options.protocol }),
    ...(options.httpVersion !== undefined && { httpVersion: options.httpVersion }),
    ...(options.tls !== undefined && { tls: options.tls }),
  });
}

/**
 * The TLS options as Node takes them, both for http2.connect() and for
 * https.request(). TLS options with a cleartext URL are refused rather than
 * ignored: a caller who gave a CA or a client certificate expects TLS.
 */
function tlsNodeOptions(options: CofferClientOptions): CofferTlsOptions | undefined {
  const tls = options.tls;
  if (tls === undefined) return undefined;
  if (new URL(options.url).protocol !== "https:") {
    throw new Error(`the tls option needs an https:// url (got ${options.url})`);
  }
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new Error("the tls option needs cert and key together");
  }
  return {
    ...(tls.ca !== undefined && { ca: tls.ca }),
    ...(tls.cert !== undefined && { cert: tls.cert }),
    ...(tls.key !== undefined && { key: tls.key }),
  };
}

/**
 * Calls that the connection failed under are UNAVAILABLE, as gRPC's HTTP/2
 * mapping has it and as callers expect (the retries retry UNAVAILABLE only),
 * where connect-node reports other codes:
 *
 * - HTTP/2 REFUSED_STREAM (a request that reached a server shutting down,
 *   after its GOAWAY; never processed): INTERNAL, since Node emits the
 *   stream's error before the close event that connect-node maps by code;
 * - a reset connection (a server killed, a proxy cut): ABORTED, with Node's
 *   ECONNRESET or EPIPE as its cause. ABORTED is also what a server answers
 *   for a stale etag, and that answer has no such cause, so it stays ABORTED;
 * - an HTTP/2 connection closed under its streams (a killed server's socket
 *   closes cleanly): its streams end with RST_STREAM CANCEL, which
 *   connect-node reports as CANCELED, with no cause. The caller's own cancel
 *   (abort signal) is CANCELED too, but then its signal says so, and that
 *   one stays CANCELED.
 *
 * It is the innermost interceptor, so the retries and the caller's own
 * interceptors see the corrected code. Errors of a stream's messages are
 * mapped too, since a server may die in the middle of a stream.
 */
const connectionLossIsUnavailable: Interceptor = (next) => async (req) => {
  const unavailable = (err: unknown): unknown =>
    err instanceof ConnectError && isConnectionLoss(err, req.signal)
      ? new ConnectError(err.rawMessage, Code.Unavailable, err.metadata, undefined, err.cause)
      : err;
  let res: Awaited<ReturnType<typeof next>>;
  try {
    res = await next(req);
  } catch (err) {
    throw unavailable(err);
  }
  if (!res.stream) return res;
  const messages = res.message;
  return {
    ...res,
    message: (async function* () {
      try {
        yield* messages;
      } catch (err) {
        throw unavailable(err);
      }
    })(),
  };
};

function isConnectionLoss(err: ConnectError, signal: AbortSignal): boolean {
  switch (err.code) {
    case Code.Internal:
      return causes(err).some(
        (e) => e.code === "ERR_HTTP2_STREAM_ERROR" && e.message.includes("NGHTTP2_REFUSED_STREAM"),
      );
    case Code.Aborted:
      return causes(err).some((e) => e.code === "ECONNRESET" || e.code === "EPIPE");
    case Code.Canceled:
      // connect-node's error for a stream reset with CANCEL is made without a
      // cause; a local cancel carries the signal's reason.
      return !signal.aborted && err.cause === undefined;
    default:
      return false;
  }
}

/** The errors under a ConnectError, outermost first (at most 8, in case of a cycle). */
function causes(err: ConnectError): NodeJS.ErrnoException[] {
  const out: NodeJS.ErrnoException[] = [];
  for (let e = err.cause; e instanceof Error && out.length < 8; e = e.cause) out.push(e);
  return out;
}
