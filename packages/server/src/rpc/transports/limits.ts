import net, { type AddressInfo } from "node:net";
import type { ConnectionLimits } from "../../config.ts";
import { freshMap, RENEW_EVERY } from "./stream-tables.ts";
import type { ServerTls } from "./tls.ts";

export type { ConnectionLimits };

/** What every transport's listen function takes besides the services and its address. */
export interface ListenOptions {
  /** The largest request body read whole. */
  readMaxBytes: number;
  /** Aborted when the grace period of a shutdown runs out. */
  shutdownSignal: AbortSignal;
  tls?: ServerTls | undefined;
  limits: ConnectionLimits;
  /** Shared by all transports: request bytes held by every call in flight. */
  budget: RequestBudget;
}

/** What every transport's listen function returns: its port, and how to stop it. */
export interface Listening {
  port: number;
  /** Stops accepting connections and lets requests in flight finish. */
  close(): Promise<void>;
  /** Ends every connection now. */
  destroy(): void;
}

/** A request that holds part of the {@link RequestBudget}. */
export interface BudgetHolder {
  /**
   * Ends the request now, to free its bytes for others: it holds the most
   * bytes of the requests still receiving their bodies, and the budget is
   * spent.
   */
  evict(): void;
}

/**
 * The request bytes held by every request in flight on both ports, against
 * one cap (`COFFER_MAX_BUFFERED_REQUEST_BYTES`), so that many slow or stalled
 * bodies cannot grow the heap without bound: each port buffers a request
 * whole (up to 512 KiB) before decoding it.
 *
 * When bytes do not fit, the requests still receiving their bodies that hold
 * the most are evicted until they do, as long as each holds more than the
 * request asking will: big stalled bodies make room for small live ones, so
 * a valid call still gets through while stalled bodies spend the budget, and
 * a request is never evicted for a bigger one. When that is not enough, the
 * request asking is refused. A request whose body has arrived is never
 * evicted: it is decoded and being served.
 */
export class RequestBudget {
  #used = 0;
  /** Renewed every RENEW_EVERY releases: it gains and loses an entry per call (stream-tables.ts). */
  #held = new Map<BudgetHolder, { bytes: number; receiving: boolean }>();
  #released = 0;

  constructor(readonly capacity: number) {}

  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }

  /**
   * Charges `bytes` more to `holder` (registering it on first use), evicting
   * bigger requests still receiving their bodies when they do not fit. False,
   * with nothing charged, when they still do not.
   */
  charge(holder: BudgetHolder, bytes: number): boolean {
    const entry = this.#held.get(holder);
    const total = (entry?.bytes ?? 0) + bytes;
    while (this.#used + bytes > this.capacity) {
      const biggest = this.#biggestReceiving(holder);
      if (biggest === undefined || biggest.bytes <= total) return false;
      this.release(biggest.holder);
      biggest.holder.evict();
    }
    if (entry === undefined) this.#held.set(holder, { bytes, receiving: true });
    else entry.bytes = total;
    this.#used += bytes;
    return true;
  }

  #biggestReceiving(except: BudgetHolder): { holder: BudgetHolder; bytes: number } | undefined {
    let biggest: { holder: BudgetHolder; bytes: number } | undefined;
    for (const [holder, entry] of this.#held) {
      if (holder === except || !entry.receiving) continue;
      if (biggest === undefined || entry.bytes > biggest.bytes) {
        biggest = { holder, bytes: entry.bytes };
      }
    }
    return biggest;
  }

  /** The holder's body has arrived: it is no longer evicted. */
  received(holder: BudgetHolder): void {
    const entry = this.#held.get(holder);
    if (entry !== undefined) entry.receiving = false;
  }

  /** Releases everything the holder holds (idempotent). */
  release(holder: BudgetHolder): void {
    const entry = this.#held.get(holder);
    if (entry === undefined) return;
    this.#held.delete(holder);
    this.#used -= entry.bytes;
    if (++this.#released % RENEW_EVERY === 0) this.#held = freshMap(this.#held);
  }
}

/** One accepted connection of a {@link GuardedListener}. */
export interface Guard {
  /** The connection made its first request: its first-request deadline no longer applies. */
  started(): void;
}

/** What {@link listenGuarded} returns. */
export interface GuardedListener {
  port: number;
  /** Open connections. */
  readonly connections: number;
  /**
   * The guard of the connection from this peer address and port (the raw
   * socket's, which a TLS socket on it shares), if still open.
   */
  guardOf(remoteAddress: string | undefined, remotePort: number | undefined): Guard | undefined;
  /** Stops accepting; open connections stay. */
  close(): Promise<void>;
  /** Ends every connection now. */
  destroy(): void;
}

/**
 * A TCP listener with the limits every API port shares, in front of the
 * HTTP server that speaks on the connection (handed over by `serve`):
 *
 * - a connection must make its first request (HTTP/1.1 headers complete, or
 *   an HTTP/2 stream opened) within `headersTimeoutMs` of being accepted, TLS
 *   handshake and HTTP/2 preface included, or it is destroyed. Later
 *   requests are the HTTP servers' business (header timeout, idle timeout);
 * - at most `maxConnections` connections stay open, so that idle sockets
 *   cannot use up the process's descriptors. One more closes the oldest
 *   connection that has not made its first request yet (a silent socket, or
 *   a slow one), or, when every connection has, the new one at once. A flood
 *   of silent sockets thus cycles through its own slots, while a client that
 *   sends its request as soon as it connects, as every real client does,
 *   still gets served; connections in use are never closed for it.
 */
export async function listenGuarded(
  address: { host: string; port: number },
  limits: Pick<ConnectionLimits, "headersTimeoutMs" | "maxConnections">,
  serve: (socket: net.Socket) => void,
): Promise<GuardedListener> {
  /** Every open connection, oldest first, with its guard while it has made no request. */
  const sockets = new Map<net.Socket, { key: string; fresh: boolean }>();
  const guards = new Map<string, Guard>();
  const server = net.createServer((socket) => {
    // A reset peer must not crash the process; the HTTP server, once it has
    // the socket, handles errors too.
    socket.on("error", () => undefined);
    if (sockets.size >= limits.maxConnections && !evictFresh()) {
      socket.destroy();
      return;
    }
    const key = peerKey(socket.remoteAddress, socket.remotePort);
    const state = { key, fresh: true };
    const timer = setTimeout(() => socket.destroy(), limits.headersTimeoutMs);
    const guard: Guard = {
      started: () => {
        state.fresh = false;
        clearTimeout(timer);
      },
    };
    sockets.set(socket, state);
    guards.set(key, guard);
    socket.once("close", () => {
      clearTimeout(timer);
      sockets.delete(socket);
      if (guards.get(key) === guard) guards.delete(key);
    });
    serve(socket);
  });
  /** Destroys the oldest connection that has made no request; false if there is none. */
  const evictFresh = (): boolean => {
    for (const [socket, state] of sockets) {
      if (!state.fresh) continue;
      sockets.delete(socket);
      socket.destroy();
      return true;
    }
    return false;
  };
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(address.port, address.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    get connections() {
      return sockets.size;
    },
    guardOf: (remoteAddress, remotePort) => guards.get(peerKey(remoteAddress, remotePort)),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    destroy: () => {
      server.close();
      for (const s of sockets.keys()) s.destroy();
    },
  };
}

function peerKey(address: string | undefined, port: number | undefined): string {
  return `${address}|${port}`;
}

/** The client connection preface of HTTP/2 (RFC 9113, section 3.4). */
export const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/**
 * Reads a new connection's first bytes until they are the whole HTTP/2
 * preface or cannot begin it, puts them back, and says which: a client may
 * send the preface in several segments ("PR", a pause, the rest), and no
 * HTTP/1 request begins with it. A connection that stays silent, or sends
 * part of the preface and stops, is left to the caller's deadline.
 */
export function sniffProtocol(socket: net.Socket, decide: (protocol: "h1" | "h2") => void): void {
  const chunks: Buffer[] = [];
  let length = 0;
  const onReadable = () => {
    for (let chunk: Buffer | null = socket.read(); chunk !== null; chunk = socket.read()) {
      chunks.push(chunk);
      length += chunk.length;
    }
    if (length === 0) return;
    const head = Buffer.concat(chunks, length);
    const n = Math.min(length, HTTP2_PREFACE.length);
    const isPreface = head.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n));
    if (isPreface && length < HTTP2_PREFACE.length) return;
    socket.off("readable", onReadable);
    socket.unshift(head);
    decide(isPreface ? "h2" : "h1");
  };
  socket.on("readable", onReadable);
}
