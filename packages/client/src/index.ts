import { SecretService } from "@coffer/api";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";

export * from "@coffer/api";

/** How a client talks to Coffer. */
export type CofferProtocol = "grpc" | "connect" | "grpc-web";

/** Options of {@link createCofferClient}. */
export interface CofferClientOptions {
  /**
   * The server's base URL. gRPC goes to the gRPC port (default
   * http://127.0.0.1:50051); Connect and gRPC-Web to the HTTP port (default
   * http://127.0.0.1:8080).
   */
  url: string;
  /** Defaults to "connect". */
  protocol?: CofferProtocol;
  /** Bearer token sent as `authorization: Bearer <token>` on every call. */
  token?: string;
  /** Deadline of every call, in milliseconds. */
  timeoutMs?: number;
  /** For Connect and gRPC-Web: "2" (default) or "1.1". gRPC always uses HTTP/2. */
  httpVersion?: "1.1" | "2";
  /** Extra interceptors, run before the ones the client adds. */
  interceptors?: Interceptor[];
}

/** A typed client of every RPC of `coffer.secretmanager.v1.SecretService`. */
export type CofferClient = Client<typeof SecretService>;

/**
 * Creates a typed SecretService client over connect-node.
 *
 * @example
 * const coffer = createCofferClient({ url: "http://127.0.0.1:8080" });
 * const { secret } = await coffer.createSecret({ projectId, name: "db", path: "/prod" });
 */
export function createCofferClient(options: CofferClientOptions): CofferClient {
  return createClient(SecretService, createCofferTransport(options));
}

/** The transport under {@link createCofferClient}, for callers that build their own clients. */
export function createCofferTransport(options: CofferClientOptions): Transport {
  const interceptors: Interceptor[] = [...(options.interceptors ?? [])];
  const token = options.token;
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
