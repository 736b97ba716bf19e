import http from "node:http";
import http2 from "node:http2";
import type { Duplex } from "node:stream";
import { Code, ConnectError, type ConnectRouter, createContextValues } from "@connectrpc/connect";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import { routes, type Services } from "../services.ts";
import { connectAdapter } from "./connect-adapter.ts";
import {
  type BudgetHolder,
  type ConnectionLimits,
  type GuardedListener,
  type Listening,
  type ListenOptions,
  listenGuarded,
  type RequestBudget,
  sniffProtocol,
} from "./limits.ts";
import { clientGoneFromNodeRequest, clientGoneKey, peerFromNodeRequest, peerKey } from "./peer.ts";
import { noteSessionStream } from "./stream-tables.ts";
import type { ServerTls } from "./tls.ts";
import { refuseUndecodable } from "./undecodable.ts";

/**
 * Serves services over Connect, gRPC-Web and gRPC with connect-node on one
 * cleartext port that speaks both HTTP/1.1 (Connect with JSON or binary,
 * gRPC-Web from browsers, curl) and HTTP/2 with prior knowledge. Node 20's
 * http2 server cannot fall back to HTTP/1.1 without TLS, so each connection's
 * first bytes decide: HTTP/2 if they are its whole 24-byte preface, which no
 * HTTP/1 request begins with.
 *
 * With `tls`, the port speaks only TLS instead, and ALPN picks HTTP/2 or
 * HTTP/1.1; with `tls.clientCa`, only to clients whose certificate it signed.
 *
 * Requests that match no RPC go to `fallback` (the web console), else get
 * connect's empty 404. It answers with its own cache-control, which
 * overrides the port's `no-store`.
 *
 * Either way the `limits` apply: see {@link listenGuarded} (connection cap,
 * first request deadline), {@link guardRequest} (body timeout, request byte
 * budget), {@link closeIdleSessions}; HTTP/1.1 keep-alive and later
 * requests' headers are timed by node's http server.
 */
export async function listenConnect(
  services: Services,
  address: { host: string; port: number },
  options: ListenOptions,
  fallback?: ConnectNodeAdapterOptions["fallback"],
): Promise<Listening> {
  const { limits, budget } = options;
  const adapter = connectAdapter({
    routes: (router: ConnectRouter) => {
      routes(services)(router);
      // connect-node reads `router.handlers` after this returns.
      router.handlers.splice(
        0,
        router.handlers.length,
        ...router.handlers.map((h) => refuseUndecodable(h, options.readMaxBytes)),
      );
    },
    readMaxBytes: options.readMaxBytes,
    shutdownSignal: options.shutdownSignal,
    contextValues: (req) =>
      createContextValues()
        .set(peerKey, peerFromNodeRequest(req))
        .set(clientGoneKey, clientGoneFromNodeRequest(req)),
    ...(fallback !== undefined && { fallback }),
  });
  // Set once the listener is up; no request arrives before.
  let listener: GuardedListener | undefined;
  const handler = (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ) => {
    if (req.httpVersionMajor === 1) {
      listener?.guardOf(req.socket.remoteAddress, req.socket.remotePort)?.started();
    }
    guardRequest(req, res, limits, budget);
    // Answers carry secret metadata (names, paths, tags, versions, tokens'
    // names), and the reads are also served over GET, which browsers and
    // proxies may cache: nothing from this port is to be stored.
    res.setHeader("cache-control", "no-store");
    adapter(req as http.IncomingMessage, res as http.ServerResponse);
  };
  if (options.tls !== undefined) {
    const server = createTlsServer(handler, options.tls, limits);
    listener = await listenGuarded(address, limits, (socket) => server.emit("connection", socket));
    return serverOf(listener, server, undefined, trackSessions(server, limits, listener));
  }
  const h1 = http.createServer(h1Options(limits), handler);
  answerHeaderOverflow(h1);
  startHeaderChecks(h1);
  const h2 = http2.createServer(
    { settings: { maxConcurrentStreams: limits.maxStreamsPerConnection } },
    handler,
  );
  listener = await listenGuarded(address, limits, (socket) =>
    sniffProtocol(socket, (protocol) => (protocol === "h2" ? h2 : h1).emit("connection", socket)),
  );
  return serverOf(listener, h2, h1, trackSessions(h2, limits, listener));
}

/** What {@link listenConnect} returns, over the listener and the HTTP servers behind it. */
function serverOf(
  listener: GuardedListener,
  h2: http2.Http2Server | http2.Http2SecureServer,
  h1: http.Server | undefined,
  sessions: Set<http2.ServerHttp2Session>,
): Listening {
  return {
    port: listener.port,
    close: async () => {
      const closed = listener.close();
      // Closes idle HTTP/1.1 connections (with allowHTTP1, the TLS server
      // tracks them) and stops the header checks.
      stopHttpServer(h1 ?? h2);
      for (const s of sessions) s.close();
      // HTTP/1.1 keep-alive connections that are busy close after their
      // response; HTTP/2 forbids the header (its sessions got a GOAWAY).
      (h1 ?? h2).on("request", (req, res) => {
        if (req.httpVersionMajor === 1) res.setHeader("connection", "close");
      });
      await closed;
    },
    destroy: () => {
      for (const s of sessions) s.destroy();
      listener.destroy();
      stopHttpServer(h1 ?? h2);
    },
  };
}

/**
 * HTTP/1.1: idle keep-alive connections close after the idle timeout, and
 * each request's headers must arrive within the header timeout of its first
 * byte. Node checks the header deadline on an interval, fine enough here for
 * timeouts of a few hundred milliseconds in tests. A request body is timed
 * by {@link guardRequest} (bytes must keep arriving), not as a whole.
 */
function h1Options(limits: ConnectionLimits): http.ServerOptions {
  return {
    keepAliveTimeout: limits.idleTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: 0,
    connectionsCheckingInterval: checkingInterval(limits),
  };
}

function checkingInterval(limits: ConnectionLimits): number {
  return Math.min(1_000, Math.max(50, Math.floor(limits.headersTimeoutMs / 5)));
}

/**
 * Node's http server times headers only once it has emitted "listening"
 * (it starts its connection checks then), and these servers never listen:
 * the guarded listener hands them connections. Emitting the event starts the
 * checks, which {@link stopHttpServer} stops.
 */
function startHeaderChecks(server: http.Server | http2.Http2SecureServer): void {
  server.emit("listening");
}

/**
 * Closes the HTTP server behind the listener: node then closes its idle
 * HTTP/1.1 connections and stops its header checks. It never listened, so
 * the callback gets an error, which says just that.
 */
function stopHttpServer(server: http.Server | http2.Http2Server | http2.Http2SecureServer): void {
  (server as http.Server).close(() => undefined);
}

/**
 * One TLS server for HTTP/2 and HTTP/1.1, chosen by ALPN (a client that
 * offers none gets HTTP/1.1). A client that fails the handshake, for want of
 * a certificate signed by the client CA, never reaches the handler.
 */
function createTlsServer(
  handler: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  tls: ServerTls,
  limits: ConnectionLimits,
): http2.Http2SecureServer {
  const server = http2.createSecureServer(
    {
      cert: tls.cert,
      key: tls.key,
      allowHTTP1: true,
      settings: { maxConcurrentStreams: limits.maxStreamsPerConnection },
      // The first-request deadline of the guarded listener covers the handshake.
      handshakeTimeout: limits.headersTimeoutMs,
      ...(tls.clientCa !== undefined && {
        ca: tls.clientCa,
        requestCert: true,
        rejectUnauthorized: true,
      }),
    },
    handler,
  );
  // HTTP/1.1 over TLS: the same timeouts as in cleartext (these are the
  // properties node's HTTP/1.1 fallback reads from this server).
  const h1 = h1Options(limits);
  Object.assign(server, {
    keepAliveTimeout: h1.keepAliveTimeout,
    headersTimeout: h1.headersTimeout,
    requestTimeout: h1.requestTimeout,
    connectionsCheckingInterval: h1.connectionsCheckingInterval,
  });
  answerHeaderOverflow(server);
  startHeaderChecks(server);
  return server;
}

/**
 * HTTP/1.1 headers past node's limit (`http.maxHeaderSize`, 16 KiB unless
 * `--max-http-header-size` says otherwise), most often a URL with a huge
 * query string: node answers a bare 431 without a body, which a REST client
 * reports as an empty, unparseable error. This answers the same 431 with a
 * JSON body in the shape every REST refusal has (`type`, `message`), then
 * closes the connection, as node does.
 *
 * Every other client error keeps node's own answer (400, 408, 413, or none
 * when a response is already on its way), which node gives only when no
 * "clientError" listener exists: so the event is intercepted here for this
 * one error rather than listened to.
 */
function answerHeaderOverflow(server: http.Server | http2.Http2SecureServer): void {
  const emit = server.emit.bind(server) as (event: string | symbol, ...args: unknown[]) => boolean;
  server.emit = ((event: string | symbol, ...args: unknown[]) => {
    const [err, socket] = args as [NodeJS.ErrnoException | undefined, Duplex | undefined];
    if (event !== "clientError" || err?.code !== "HPE_HEADER_OVERFLOW" || socket === undefined) {
      return emit(event, ...args);
    }
    // A response still on its way to a pipelined request before this one:
    // node's own handling, which never writes into the middle of it.
    if ((socket as { _httpMessage?: unknown })._httpMessage != null) return emit(event, ...args);
    if (socket.writable) {
      socket.end(headerOverflowAnswer());
      setTimeout(() => socket.destroy(), 1_000).unref();
    } else {
      socket.destroy();
    }
    return true;
  }) as typeof server.emit;
}

function headerOverflowAnswer(): string {
  const body = JSON.stringify({
    type: "invalid_request_error",
    message: `the request's headers, its URL included, are larger than ${http.maxHeaderSize} bytes; send fewer or shorter query parameters`,
  });
  return [
    "HTTP/1.1 431 Request Header Fields Too Large",
    "Content-Type: application/json",
    `Content-Length: ${Buffer.byteLength(body)}`,
    "Cache-Control: no-store",
    "Connection: close",
    "",
    body,
  ].join("\r\n");
}

/**
 * Tracks an HTTP/2 server's sessions: a session's first stream ends its
 * connection's first-request deadline, and a session with no open stream for
 * `idleTimeoutMs` is closed (GOAWAY). A session with an open stream is not
 * idle, however quiet: a health Watch may send nothing for hours, and a
 * WatchSecrets stream sends its heartbeats.
 */
function trackSessions(
  server: http2.Http2Server | http2.Http2SecureServer,
  limits: ConnectionLimits,
  listener: GuardedListener,
): Set<http2.ServerHttp2Session> {
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    closeIdleSessions(session, limits.idleTimeoutMs, () =>
      listener.guardOf(session.socket?.remoteAddress, session.socket?.remotePort)?.started(),
    );
    session.on("stream", () => noteSessionStream(session));
    session.once("close", () => sessions.delete(session));
  });
  return sessions;
}

/** Closes `session` once it has had no open stream for `idleMs`; calls `onFirstStream` once. */
export function closeIdleSessions(
  session: http2.ServerHttp2Session,
  idleMs: number,
  onFirstStream: () => void,
): void {
  let open = 0;
  let first = true;
  let idle: NodeJS.Timeout | undefined = setTimeout(() => session.close(), idleMs);
  session.on("stream", (stream) => {
    if (first) {
      first = false;
      onFirstStream();
    }
    open++;
    clearTimeout(idle);
    idle = undefined;
    stream.once("close", () => {
      open--;
      if (open === 0 && !session.closed && !session.destroyed) {
        idle = setTimeout(() => session.close(), idleMs);
      }
    });
  });
  session.once("close", () => clearTimeout(idle));
}

/**
 * Times a request's body and charges it to the byte budget, by wrapping the
 * request's async iterator, which is how connect-node reads the body:
 *
 * - each wait for the next bytes is bounded by `bodyTimeoutMs`; past it the
 *   request is closed (an HTTP/1.1 connection cannot be reused with half a
 *   body in it; an HTTP/2 stream is reset) and the handler's read fails;
 * - each chunk is charged to `budget`; when it does not fit even after
 *   evicting stalled requests, the request is refused with
 *   RESOURCE_EXHAUSTED; an evicted request is closed;
 * - the charge is released when the response ends or the request is
 *   aborted; a response that ends before the body was read whole closes the
 *   request, so that its sender cannot hold the connection with a body
 *   nobody reads.
 */
function guardRequest(
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
  limits: ConnectionLimits,
  budget: RequestBudget,
): void {
  // Node's HTTP/1.1 request lets go of its socket once it is over.
  const socket = req.socket;
  const close = () => {
    if ("stream" in req) {
      if (!req.stream.closed) req.stream.close(http2.constants.NGHTTP2_CANCEL);
    } else {
      socket.destroy();
    }
  };
  const holder: BudgetHolder = { evict: close };
  const over = () => {
    budget.release(holder);
    if (req.complete) return;
    if ("stream" in req) {
      // Not at once: the response's trailers may still be on their way, and
      // a reset would overtake them. The client has the body timeout to end
      // its side; then RFC 9113, section 8.1: after a complete response,
      // NO_ERROR asks it to stop sending.
      const stream = req.stream;
      const timer = setTimeout(() => {
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
      }, limits.bodyTimeoutMs);
      stream.once("close", () => clearTimeout(timer));
    } else if (!socket.destroyed) {
      // FIN after the response, so that it is not lost to a reset; then,
      // whatever the peer does, the socket goes.
      socket.end();
      setTimeout(() => socket.destroy(), 1_000).unref();
    }
  };
  // The response is sent: for HTTP/2, the stream's writable side is done
  // (the compatibility response's own events wait for the client's side of
  // the stream, which a stalled client never ends). "close": aborted.
  if ("stream" in req) req.stream.once("finish", over);
  else res.once("finish", over);
  res.once("close", over);
  const read = req[Symbol.asyncIterator].bind(req);
  const guard: BodyGuard = { read, close, holder, req, res, limits, budget };
  Object.defineProperty(req, Symbol.asyncIterator, {
    configurable: true,
    value: () => guardedBody(guard),
  });
}

/** What guardedBody needs of one request (guardRequest). */
interface BodyGuard {
  /** The request's own async iterator. */
  read: () => AsyncIterator<Buffer>;
  close: () => void;
  holder: BudgetHolder;
  req: http.IncomingMessage | http2.Http2ServerRequest;
  res: http.ServerResponse | http2.Http2ServerResponse;
  limits: ConnectionLimits;
  budget: RequestBudget;
}

/**
 * The body of a guarded request (guardRequest), chunk by chunk. A module
 * function, not a generator declared per request: V8 gives the generator
 * objects of each new generator function a hidden class of their own, kept in
 * the old generation (bench/RESULTS.md, access reading of 2026-12-06,
 * seventh session).
 *
 * One timer per request bounds each wait for the next bytes: re-armed before
 * each wait, ignored if it fires while the reader holds a chunk. When it
 * fires during a wait it closes the request, which ends the wait, however
 * node reports it; the read then fails with the timeout.
 */
async function* guardedBody(g: BodyGuard): AsyncGenerator<Buffer> {
  const { close, holder, req, res, limits, budget } = g;
  const chunks = g.read();
  const wait = { pending: false, stalled: false };
  const timer = setTimeout(() => {
    if (!wait.pending) return;
    wait.stalled = true;
    close();
  }, limits.bodyTimeoutMs);
  try {
    for (;;) {
      // Re-arms it, fired or not.
      timer.refresh();
      wait.pending = true;
      let next: IteratorResult<Buffer>;
      try {
        next = await chunks.next();
      } catch (err) {
        throw wait.stalled ? bodyTimeout(limits.bodyTimeoutMs) : err;
      } finally {
        wait.pending = false;
      }
      if (wait.stalled) throw bodyTimeout(limits.bodyTimeoutMs);
      if (next.done) return;
      if (!budget.charge(holder, next.value.length)) {
        if (!("stream" in req)) (res as http.ServerResponse).shouldKeepAlive = false;
        throw budgetSpent(budget.capacity);
      }
      yield next.value;
    }
  } finally {
    clearTimeout(timer);
    budget.received(holder);
  }
}

function bodyTimeout(ms: number): ConnectError {
  return new ConnectError(
    `the request body stalled: no bytes for ${ms} ms (COFFER_BODY_TIMEOUT)`,
    Code.DeadlineExceeded,
  );
}

/** The refusal when the request byte budget is spent, on either port. */
export function budgetSpent(capacity: number): ConnectError {
  return new ConnectError(
    `the server holds its limit of ${capacity} bytes of request bodies in flight (COFFER_MAX_BUFFERED_REQUEST_BYTES); retry shortly`,
    Code.ResourceExhausted,
  );
}
