import { setMaxListeners } from "node:events";
import type http from "node:http";
import http2 from "node:http2";
import { Code, ConnectError, createConnectRouter } from "@connectrpc/connect";
import {
  type UniversalHandler,
  type UniversalServerRequest,
  type UniversalServerResponse,
  uResponseNotFound,
} from "@connectrpc/connect/protocol";
import {
  type ConnectNodeAdapterOptions,
  compressionBrotli,
  compressionGzip,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

/**
 * connect-node's `connectNodeAdapter` (2.1.2), with the request built here
 * rather than by its `universalRequestFromNodeRequest`, which costs a Connect
 * call about 5 % of its CPU for nothing (profile of 2026-12-05):
 *
 * - it aborts the request's signal when the stream closes, after every call,
 *   without a reason, so that node builds a DOMException, stack and all, each
 *   time (`abortController.abort()`, node-universal-handler.js:63). Here a
 *   stream that closes once its response was sent aborts with one reason made
 *   once; a stream the client reset or left before its answer gets a reason
 *   of its own, with connect-node's codes;
 * - it reads the body through an async generator of its own around the
 *   request's iterator; here the handler reads the request (that is, the
 *   guarded iterator connect-node.ts gives it) directly;
 * - it gives every request an AbortController of its own, linked by
 *   connect to the context's; here only a server stream gets one (aborted
 *   when its client leaves, and at shutdown). A unary request's signal is
 *   the server's shutdown signal: a unary call, once its request is in,
 *   runs to its answer and its audit event even if the client hangs up
 *   (its database work could not be taken back halfway anyway), and the
 *   controller, its listeners and its abort event cost a Connect call about
 *   3 % of its CPU. The handlers of unary calls read no signal; their
 *   context makes its signal only when read, here (patched, below) as on
 *   the gRPC port (grpc-js.ts);
 * - it writes a unary call's one-message body through a promise per chunk;
 *   here in one `end()` (writeUnary);
 * - it parses the request's URL to build its string; here the router has
 *   already matched its path, so the string is put together, and connect
 *   parses it once, for the query.
 *
 * The rest is connect-node's: the router (gzip and brotli unless the options
 * say otherwise), routing by path without the query, the fallback (connect's
 * empty 404 by default), the response writer, and a failed handler logged
 * unless the call was aborted.
 *
 * Not avoidable from here, so patched (patches/@connectrpc+connect+2.1.2.patch):
 * connect's own handlers end each call with `context.abort()` without a
 * reason (protocol-connect/handler-factory.js:147 for unary calls, through
 * createHandlerContext's abort, implementation.js:37), which built a second
 * DOMException per call; every handler context made a deadline
 * AbortController even without a timeout; and every handler context made
 * its signal, linked to the request's, whether or not anything read it
 * (now made when first read, aborted as it would have been).
 */
export function connectAdapter(
  options: ConnectNodeAdapterOptions,
): (req: NodeRequest, res: NodeResponse) => void {
  // Shutdown reaches a call through its request's signal (universalRequest),
  // not through connect's shutdownSignal, which would link it to every call.
  const { shutdownSignal, ...routerOptions } = options;
  const router = createConnectRouter({
    ...routerOptions,
    acceptCompression: options.acceptCompression ?? [compressionGzip, compressionBrotli],
  });
  options.routes(router);
  const prefix = options.requestPathPrefix ?? "";
  const paths = new Map<string, UniversalHandler>();
  for (const handler of router.handlers) paths.set(prefix + handler.requestPath, handler);
  const fallback = options.fallback ?? notFound;
  return (req, res) => {
    const handler = paths.get(req.url?.split("?", 2)[0] ?? "");
    if (handler === undefined) {
      fallback(req as http.IncomingMessage, res as http.ServerResponse);
      return;
    }
    const stream = handler.method.methodKind !== "unary";
    handler(universalRequest(req, res, options, stream))
      .then((uRes) =>
        stream
          ? universalResponseToNodeResponse(uRes, res as http.ServerResponse)
          : writeUnary(uRes, res),
      )
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        console.error(
          `handler for rpc ${handler.method.name} of ${handler.service.typeName} failed`,
          reason,
        );
      });
  };
}

/**
 * A unary call's response, written as connect-node writes it but in one
 * `end()`: its body (one message, or a gRPC one's envelope) gathered, then
 * the head, any trailers and the body. connect-node writes each chunk
 * through a promise that waits for the write's callback, with an `error`
 * and a `drain` listener, then ends. A bare echo behind this adapter (no
 * database) cost 96 µs of CPU per call this way against 105 with
 * connect-node's writer (8 interleaved rounds, 2026-12-08). Server streams
 * keep connect-node's writer, which waits for each message to be written.
 */
async function writeUnary(uRes: UniversalServerResponse, res: NodeResponse): Promise<void> {
  try {
    const chunks: Uint8Array[] = [];
    if (uRes.body !== undefined) for await (const chunk of uRes.body) chunks.push(chunk);
    (res as http.ServerResponse).writeHead(uRes.status, nodeHeaders(uRes.header));
    if (uRes.trailer !== undefined) res.addTrailers(nodeHeaders(uRes.trailer));
    if (chunks.length === 0) res.end();
    else res.end(chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks));
  } catch (e) {
    throw e instanceof Error ? nodeErrorReason(e) : e;
  }
}

/** Headers as node writes them: one value, or a list for a repeated name. */
function nodeHeaders(init: HeadersInit | undefined): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  if (init === undefined) return out;
  (init instanceof Headers ? init : new Headers(init)).forEach((value, key) => {
    const seen = out[key];
    if (Array.isArray(seen)) seen.push(value);
    else out[key] = seen === undefined ? value : [String(seen), value];
  });
  return out;
}

function notFound(_req: unknown, res: NodeResponse): void {
  res.writeHead(uResponseNotFound.status);
  res.end();
}

/**
 * The request's signal's reason once its response is out: aborting it then
 * only tells listeners that are left, and nothing reads the reason.
 */
const RESPONSE_SENT = new ConnectError("the response was sent", Code.Canceled);

/**
 * The signal of unary requests when the server has no shutdown signal:
 * never aborted. Connect listens on it for the length of each call, so it
 * has as many listeners as calls in flight, as the server's shutdown signal
 * does (server.ts).
 */
const NEVER = new AbortController().signal;
setMaxListeners(0, NEVER);

/** An authority a URL holds as it is: a host name or IPv4 or bracketed IPv6 address, and a port. */
const PLAIN_AUTHORITY = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * The request as connect's handlers take it (connect-node's, but for the
 * signal, the body and the URL; see connectAdapter).
 */
function universalRequest(
  req: NodeRequest,
  res: NodeResponse,
  options: Pick<ConnectNodeAdapterOptions, "contextValues" | "shutdownSignal">,
  stream: boolean,
): UniversalServerRequest {
  const encrypted = "encrypted" in req.socket && req.socket.encrypted;
  const authority = "authority" in req ? req.authority : req.headers.host;
  if (authority === undefined) {
    throw new ConnectError(
      "unable to determine request authority from Node.js server request",
      Code.Internal,
    );
  }
  const base = `${encrypted ? "https" : "http"}://${authority}`;
  return {
    httpVersion: req.httpVersion,
    method: req.method ?? "",
    // The router matched the path of req.url, so it is a method's path and
    // its query.
    url: PLAIN_AUTHORITY.test(authority) ? base + req.url : new URL(req.url ?? "", base).toString(),
    header: webHeaders(req.headers),
    body: req as AsyncIterable<Uint8Array>,
    signal: stream
      ? requestSignal(req, res, options.shutdownSignal)
      : (options.shutdownSignal ?? NEVER),
    contextValues: options.contextValues?.(req),
  };
}

/**
 * The signal of a server stream's request: aborted when the client resets
 * the stream or leaves, when the response is over, and at shutdown.
 */
function requestSignal(
  req: NodeRequest,
  res: NodeResponse,
  shutdownSignal: AbortSignal | undefined,
): AbortSignal {
  const controller = new AbortController();
  const onShutdown = () => controller.abort(shutdownSignal?.reason);
  if (shutdownSignal?.aborted) onShutdown();
  else shutdownSignal?.addEventListener("abort", onShutdown);
  const ended = () => shutdownSignal?.removeEventListener("abort", onShutdown);
  if ("stream" in req) {
    req.once("close", () => {
      ended();
      controller.abort(
        resetError(req.stream.rstCode) ??
          (res.writableEnded
            ? RESPONSE_SENT
            : new ConnectError("the client closed the stream", Code.Canceled)),
      );
    });
  } else {
    // HTTP/1.1 has no error codes; node says ECONNRESET. The request emits
    // "close" once its body is read: the response's says when it is over.
    const onError = (e: Error) => {
      req.off("error", onError);
      res.off("close", onClose);
      ended();
      controller.abort(nodeErrorReason(e));
    };
    const onClose = () => {
      req.off("error", onError);
      res.off("close", onClose);
      ended();
      controller.abort(
        req.errored
          ? nodeErrorReason(req.errored)
          : res.writableEnded
            ? RESPONSE_SENT
            : new ConnectError("the client closed the connection", Code.Canceled),
      );
    };
    req.once("error", onError);
    res.once("close", onClose);
  }
  return controller.signal;
}

/** The request's headers without HTTP/2's pseudo-headers, as connect-node reads them. */
function webHeaders(headers: http.IncomingHttpHeaders): Headers {
  const web = new Headers();
  for (const [key, value] of Object.entries(headers)) {
    if (key.startsWith(":") || value === undefined) continue;
    if (typeof value === "string") web.append(key, value);
    else for (const v of value) web.append(key, v);
  }
  return web;
}

/**
 * connect-node's reading of a node error on an HTTP/1.1 request: the client
 * hung up (ABORTED), the network failed (UNAVAILABLE), or INTERNAL. It also
 * reads the errors' causes; node's own socket errors have none.
 */
function nodeErrorReason(e: Error): ConnectError {
  const code = (e as NodeJS.ErrnoException).code ?? "";
  const connectCode = HUNG_UP.has(code)
    ? Code.Aborted
    : UNREACHABLE.has(code)
      ? Code.Unavailable
      : Code.Internal;
  const error = ConnectError.from(e, connectCode);
  if (error !== e) error.cause = e;
  return error;
}

const HUNG_UP = new Set([
  "ERR_STREAM_WRITE_AFTER_END",
  "ERR_STREAM_DESTROYED",
  "ERR_HTTP2_INVALID_STREAM",
  "ECONNRESET",
]);
const UNREACHABLE = new Set(["ETIMEDOUT", "ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED"]);

const h2 = http2.constants;

/** connect-node's reading of an HTTP/2 reset code; undefined for NO_ERROR and STREAM_CLOSED. */
function resetError(code: number): ConnectError | undefined {
  const connectCode = resetCodes.get(code);
  if (connectCode === undefined) return undefined;
  return new ConnectError(
    `http/2 stream closed with error code 0x${code.toString(16)}`,
    connectCode,
  );
}

const resetCodes = new Map<number, Code>([
  [h2.NGHTTP2_PROTOCOL_ERROR, Code.Internal],
  [h2.NGHTTP2_INTERNAL_ERROR, Code.Internal],
  [h2.NGHTTP2_FLOW_CONTROL_ERROR, Code.Internal],
  [h2.NGHTTP2_SETTINGS_TIMEOUT, Code.Internal],
  [h2.NGHTTP2_FRAME_SIZE_ERROR, Code.Internal],
  [h2.NGHTTP2_COMPRESSION_ERROR, Code.Internal],
  [h2.NGHTTP2_CONNECT_ERROR, Code.Internal],
  [h2.NGHTTP2_REFUSED_STREAM, Code.Unavailable],
  [h2.NGHTTP2_CANCEL, Code.Canceled],
  [h2.NGHTTP2_ENHANCE_YOUR_CALM, Code.ResourceExhausted],
  [h2.NGHTTP2_INADEQUATE_SECURITY, Code.PermissionDenied],
  [h2.NGHTTP2_HTTP_1_1_REQUIRED, Code.PermissionDenied],
]);
