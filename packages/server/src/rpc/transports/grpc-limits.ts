import http2 from "node:http2";
import { Duplex } from "node:stream";
import * as grpc from "@grpc/grpc-js";
import {
  type BudgetHolder,
  type ConnectionLimits,
  type GuardedListener,
  listenGuarded,
  type RequestBudget,
} from "./limits.ts";
import { noteSessionStream } from "./stream-tables.ts";

/**
 * HTTP/2 session memory of each gRPC connection, in MB, as node counts it
 * (nghttp2's buffers and queued writes; not the messages grpc-js assembles
 * in JavaScript, which the request budget bounds). Node's default; grpc-js
 * sets no limit unless told.
 */
const SESSION_MEMORY_MB = 10;

/**
 * The limits of the gRPC port, whose HTTP/2 server belongs to grpc-js:
 *
 * - the connection cap and the first-request deadline come from
 *   {@link listenGuarded}, which accepts connections and hands them to
 *   grpc-js (`createConnectionInjector`); the first call on a connection
 *   (seen by an interceptor, matched by peer address and port) ends its
 *   deadline;
 * - streams per connection, idle sessions (no open stream: grpc-js counts
 *   them, so watch streams keep theirs) and session memory are grpc-js
 *   channel options;
 * - grpc-js buffers each request message whole, in JavaScript, before any
 *   handler sees it. An interceptor charges the shared budget with each
 *   chunk of a call's stream as it arrives (as connect-node's port does) and
 *   gives up on the call when no byte arrives for `bodyTimeoutMs` before its
 *   message is in. A call refused for want of budget, or evicted, gets
 *   RESOURCE_EXHAUSTED; a stalled one DEADLINE_EXCEEDED; both have their
 *   stream reset, which frees what grpc-js held for them. Should grpc-js
 *   ever hide its stream, each call reserves the largest request instead.
 */
export class GrpcLimits {
  #listener: GuardedListener | undefined;

  constructor(
    readonly limits: ConnectionLimits,
    readonly budget: RequestBudget,
    readonly maxRequestBytes: number,
  ) {}

  /** Options for `new grpc.Server`. */
  serverOptions(): grpc.ServerOptions {
    return {
      "grpc.max_concurrent_streams": this.limits.maxStreamsPerConnection,
      "grpc.max_connection_idle_ms": this.limits.idleTimeoutMs,
      "grpc-node.max_session_memory": SESSION_MEMORY_MB,
      interceptors: [this.#intercept],
    };
  }

  /** Accepts connections on `address` and hands them to `server`. */
  async listen(
    server: grpc.Server,
    address: { host: string; port: number },
    credentials: grpc.ServerCredentials,
  ): Promise<GuardedListener> {
    const injector = server.createConnectionInjector(credentials);
    this.#listener = await listenGuarded(address, this.limits, (socket) =>
      injector.injectConnection(socket),
    );
    return this.#listener;
  }

  readonly #intercept: grpc.ServerInterceptor = (_method, call) => {
    const connection = call.getConnectionInfo();
    this.#listener?.guardOf(connection.remoteAddress, connection.remotePort)?.started();
    const { budget, limits } = this;
    const stream = streamOf(call);
    if (stream !== undefined) noteSessionStream(stream.session);
    let timer: NodeJS.Timeout | undefined;
    let over = false;
    const end = () => {
      over = true;
      clearTimeout(timer);
      budget.release(holder);
    };
    const refuse = (code: grpc.status, details: string) => {
      if (over) return;
      end();
      call.sendStatus({ code, details });
      if (stream !== undefined && !stream.closed) {
        // RFC 9113, section 8.1: after a complete response, NO_ERROR asks
        // the client to stop sending its request.
        stream.close(http2.constants.NGHTTP2_NO_ERROR);
      }
    };
    const spent = () => refuse(grpc.status.RESOURCE_EXHAUSTED, budgetSpentMessage(budget.capacity));
    const holder: BudgetHolder = { evict: spent };
    const stalled = () =>
      refuse(
        grpc.status.DEADLINE_EXCEEDED,
        `the request body stalled: no bytes for ${limits.bodyTimeoutMs} ms (COFFER_BODY_TIMEOUT)`,
      );
    const arrived = () => {
      clearTimeout(timer);
      budget.received(holder);
    };
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMessage: (message, nextMessage) => {
            arrived();
            nextMessage(message);
          },
          onReceiveHalfClose: (nextHalfClose) => {
            arrived();
            nextHalfClose();
          },
          onCancel: end,
        });
        timer = setTimeout(stalled, limits.bodyTimeoutMs);
        if (stream === undefined) {
          // No stream to count bytes on: reserve the largest request.
          if (!budget.charge(holder, this.maxRequestBytes)) spent();
          return;
        }
        // Another listener of the stream grpc-js reads: it sees the same
        // chunks, as they arrive, and changes nothing in how grpc-js reads.
        stream.on("data", (chunk: Buffer) => {
          if (over) return;
          timer?.refresh();
          if (!budget.charge(holder, chunk.length)) spent();
        });
      },
      sendStatus: (status, next) => {
        end();
        next(status);
      },
    });
  };
}

/** The message of RESOURCE_EXHAUSTED when the request byte budget is spent (both ports). */
export function budgetSpentMessage(capacity: number): string {
  return `the server holds its limit of ${capacity} bytes of request bodies in flight (COFFER_MAX_BUFFERED_REQUEST_BYTES); retry shortly`;
}

/**
 * The HTTP/2 stream under a call, to count its request bytes as they arrive
 * and to reset it when the call is refused while its client may still be
 * sending (so that grpc-js stops reading, and holding, what arrives).
 * grpc-js exposes neither: this reaches for the stream its base call keeps
 * (grpc-js 1.14, server-interceptors.js) and returns undefined if it is not
 * there; the connection limit tests fail then.
 */
function streamOf(call: grpc.ServerInterceptingCallInterface): http2.ServerHttp2Stream | undefined {
  const stream = (call as unknown as { stream?: unknown }).stream;
  return stream instanceof Duplex && "session" in stream && "close" in stream
    ? (stream as http2.ServerHttp2Stream)
    : undefined;
}
