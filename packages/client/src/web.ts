/**
 * `@coffer/client/web`: the same client for browsers and other fetch-based
 * runtimes (Deno, Bun, workers, Node's own fetch), over Connect or gRPC-Web
 * with `@connectrpc/connect-web`. It imports nothing from Node: a test
 * bundles it with `platform: "browser"` and fails on any Node built-in.
 * Browsers cannot speak gRPC proper; TLS is the browser's business.
 */
import { SecretService } from "@coffer/api";
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
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

/** How a browser client talks to Coffer: Connect or gRPC-Web, both on the HTTP port. */
export type CofferWebProtocol = "connect" | "grpc-web";

/** Options of the browser {@link createCofferClient} and {@link createCofferTransport}. */
export interface CofferWebClientOptions extends CofferCommonOptions {
  /** The server's HTTP (Connect and gRPC-Web) base URL, e.g. https://coffer.example.com. */
  url: string;
  /** Defaults to "connect". */
  protocol?: CofferWebProtocol;
  /** The fetch to use; defaults to `globalThis.fetch`. */
  fetch?: typeof globalThis.fetch;
}

/** Options of the browser {@link createCoffer}: a client's, and the helpers' defaults. */
export interface CofferWebOptions extends CofferWebClientOptions, CofferDefaults {}

/**
 * Creates a typed SecretService client over fetch: every RPC, as the API
 * defines it. It retries nothing unless `retry` is set.
 *
 * @example
 * const coffer = createCofferClient({ url: "https://coffer.example.com", token });
 */
export function createCofferClient(options: CofferWebClientOptions): CofferClient {
  return createClient(SecretService, createCofferTransport(options));
}

/**
 * Creates the client services want, over fetch: `rpc` (retrying idempotent
 * calls on UNAVAILABLE unless `retry: false`), `access` and `watch`, as the
 * Node entry's `createCoffer`.
 *
 * @example
 * const coffer = createCoffer({ url: "https://coffer.example.com", token, projectId });
 * const flags = (await coffer.access("/web/flags", { type: SecretType.KEY_VALUE })).json();
 */
export function createCoffer(options: CofferWebOptions): Coffer {
  const rpc = createCofferClient({ ...options, retry: options.retry ?? true });
  return cofferOver(rpc, options);
}

/** The transport under {@link createCofferClient}, for callers that build their own clients. */
export function createCofferTransport(options: CofferWebClientOptions): Transport {
  const common = {
    baseUrl: options.url,
    interceptors: cofferInterceptors(options),
    // Binary, as the Node client: payloads are bytes, not base64 in JSON.
    useBinaryFormat: true,
    ...(options.timeoutMs !== undefined && { defaultTimeoutMs: options.timeoutMs }),
    ...(options.fetch !== undefined && { fetch: options.fetch }),
  };
  switch (options.protocol ?? "connect") {
    case "grpc-web":
      return createGrpcWebTransport(common);
    case "connect":
      return createConnectTransport(common);
  }
}

/** Options of the browser {@link jwtTokenProvider}. There is no `jwtFile`: a browser reads no files. */
export interface JwtTokenProviderOptions
  extends JwtExchangeOptions,
    Partial<Pick<CofferWebClientOptions, "url" | "protocol" | "fetch">> {
  /** A transport to reach the server on, instead of `url` (it must add no token of its own). */
  transport?: Transport;
  /** Gives the current JWT (an OIDC ID token, say); asked at each exchange. */
  jwt: () => string | Promise<string>;
}

/**
 * A token provider that exchanges a JWT for a short-lived Coffer token and
 * renews it, as the Node entry's `jwtTokenProvider` (without `jwtFile`).
 */
export function jwtTokenProvider(options: JwtTokenProviderOptions): JwtTokenProvider {
  if (options.transport === undefined && options.url === undefined) {
    throw new TypeError("jwtTokenProvider needs url (or transport)");
  }
  const transport =
    options.transport ??
    createCofferTransport({
      url: options.url as string,
      ...(options.protocol !== undefined && { protocol: options.protocol }),
      ...(options.fetch !== undefined && { fetch: options.fetch }),
    });
  return exchangingProvider({ ...options, transport, jwtSource: "the JWT from the jwt option" });
}
