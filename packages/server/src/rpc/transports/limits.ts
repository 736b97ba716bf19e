import net, { type AddressInfo } from "node:net";
import type { ConnectionLimits } from "../../config.ts";

export type { ConnectionLimits };

/** A request that holds part of the {@link RequestBudget}. */
export interface BudgetHolder {
  /**
   * Ends the request now, to free its bytes for others: it is the oldest
   * request still receiving its body when the budget is spent.
   */
  evict(): void;
}

/**
 * The request bytes held by every request in flight on both ports, against
 * one cap (`COFFER_MAX_BUFFERED_REQUEST_BYTES`), so that many slow or stalled
 * bodies cannot grow the heap without bound: each port buffers a request
 * whole (up to 512 KiB) before decoding it.
 *
 * When bytes do not fit, the oldest requests still receiving their bodies are
 * evicted until they do: a stalled body is the oldest, while a live client's
 * body arrives in milliseconds, so a small valid request still gets through
 * while the budget is spent by stalled ones. Only when nothing can be evicted
 * (every byte held by requests whose bodies have arrived) is the newcomer
 * refused. A request whose body has arrived is never evicted: it is decoded
 * and being served.
 */
export class RequestBudget {
  #used = 0;
  /** In insertion order: oldest first. */
  readonly #held = new Map<BudgetHolder, { bytes: number; receiving: boolean }>();

  constructor(readonly capacity: number) {}

  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }

  /** Requests holding bytes now. */
  get holders(): number {
    return this.#held.size;
  }

  /**
   * Charges `bytes` more to `holder` (registering it on first use), evicting
   * the oldest other requests still receiving their bodies when they do not
   * fit. False, with nothing charged, when they still do not.
   */
  charge(holder: BudgetHolder, bytes: number): boolean {
    if (this.#used + bytes > this.capacity) {
      for (const [other, entry] of this.#held) {
        if (this.#used + bytes <= this.capacity) break;
        if (other === holder || !entry.receiving) continue;
        this.release(other);
        other.evict();
      }
      if (this.#used + bytes > this.capacity) return false;
    }
    const entry = this.#held.get(holder);
    if (entry === undefined) this.#held.set(holder, { bytes, receiving: true });
    else entry.bytes += bytes;
    this.#used += bytes;
    return true;
  }

  /**
   * The holder's body has arrived: it is no longer evicted. With `bytes`, its
   * charge becomes that (a reservation trued up to the message received).
   */
  received(holder: BudgetHolder, bytes?: number): void {
    const entry = this.#held.get(holder);
    if (entry === undefined) return;
    entry.receiving = false;
    if (bytes !== undefined && bytes < entry.bytes) {
      this.#used -= entry.bytes - bytes;
      entry.bytes = bytes;
    }
  }

  /** Releases everything the holder holds (idempotent). */
  release(holder: BudgetHolder): void {
    const entry = this.#held.get(holder);
    if (entry === undefined) return;
    this.#held.delete(holder);
    this.#used -= entry.bytes;
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
  /** Open raw connections. */
  readonly sockets: ReadonlySet<net.Socket>;
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
 * - at most `maxConnections` open connections: past it, a new one is closed
 *   at once (node's `net.Server.maxConnections`), so that idle sockets cannot
 *   use up the process's descriptors; the count drops as connections close,
 *   and the timeouts below make silent ones close;
 * - a connection must make its first request (HTTP/1.1 headers complete, or
 *   an HTTP/2 stream opened) within `headersTimeoutMs` of being accepted, TLS
 *   handshake and HTTP/2 preface included, or it is destroyed. Later
 *   requests are the HTTP servers' business (header timeout, idle timeout).
 */
export async function listenGuarded(
  address: { host: string; port: number },
  limits: Pick<ConnectionLimits, "headersTimeoutMs" | "maxConnections">,
  serve: (socket: net.Socket) => void,
): Promise<GuardedListener> {
  const sockets = new Set<net.Socket>();
  const guards = new Map<string, Guard>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    const key = peerKey(socket.remoteAddress, socket.remotePort);
    const timer = setTimeout(() => socket.destroy(), limits.headersTimeoutMs);
    const guard: Guard = { started: () => clearTimeout(timer) };
    guards.set(key, guard);
    socket.once("close", () => {
      clearTimeout(timer);
      sockets.delete(socket);
      if (guards.get(key) === guard) guards.delete(key);
    });
    // A reset peer must not crash the process; the HTTP server, once it has
    // the socket, handles errors too.
    socket.on("error", () => undefined);
    serve(socket);
  });
  server.maxConnections = limits.maxConnections;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(address.port, address.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    sockets,
    guardOf: (remoteAddress, remotePort) => guards.get(peerKey(remoteAddress, remotePort)),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    destroy: () => {
      server.close();
      for (const s of sockets) s.destroy();
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
