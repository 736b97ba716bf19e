import http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import {
  type BudgetHolder,
  type ConnectionLimits,
  type GuardedListener,
  listenGuarded,
  type RequestBudget,
} from "./limits.ts";

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
 *   handler sees it. A call therefore reserves the largest request
 *   (`maxRequestBytes`) from the shared budget when its headers arrive, and
 *   trues it up to the message's size once the message is in; the message
 *   must be in within `bodyTimeoutMs`. A call refused for want of budget, or
 *   evicted, gets RESOURCE_EXHAUSTED; a stalled one DEADLINE_EXCEEDED; both
 *   have their stream reset, which frees what grpc-js held for them.
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
      resetStream(call);
    };
    const holder: BudgetHolder = {
      evict: () => refuse(grpc.status.RESOURCE_EXHAUSTED, budgetSpentMessage(budget.capacity)),
    };
    const arrived = (bytes: number) => {
      clearTimeout(timer);
      budget.received(holder, bytes);
    };
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMessage: (message, nextMessage) => {
            arrived(Buffer.isBuffer(message) ? message.length : this.maxRequestBytes);
            nextMessage(message);
          },
          onReceiveHalfClose: (nextHalfClose) => {
            arrived(0);
            nextHalfClose();
          },
          onCancel: end,
        });
        if (!budget.charge(holder, this.maxRequestBytes)) {
          refuse(grpc.status.RESOURCE_EXHAUSTED, budgetSpentMessage(budget.capacity));
          return;
        }
        timer = setTimeout(
          () =>
            refuse(
              grpc.status.DEADLINE_EXCEEDED,
              `the request message did not arrive within ${limits.bodyTimeoutMs} ms (COFFER_BODY_TIMEOUT)`,
            ),
          limits.bodyTimeoutMs,
        );
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
 * Resets the HTTP/2 stream under a call that was refused while its client
 * may still be sending, so that grpc-js stops reading (and holding) what
 * arrives. grpc-js exposes no way to do it: this reaches for the stream its
 * base call keeps (grpc-js 1.14, server-interceptors.js), and does nothing if
 * it is not there; `limits.test.ts` fails if the memory is then not freed.
 */
function resetStream(call: grpc.ServerInterceptingCallInterface): void {
  const stream = (call as unknown as { stream?: unknown }).stream;
  if (
    typeof stream === "object" &&
    stream !== null &&
    "close" in stream &&
    "closed" in stream &&
    typeof stream.close === "function" &&
    stream.closed === false
  ) {
    // RFC 9113, section 8.1: after a complete response, NO_ERROR asks the
    // client to stop sending its request.
    stream.close(http2.constants.NGHTTP2_NO_ERROR);
  }
}
