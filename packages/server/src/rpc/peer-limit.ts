import { isIPv6 } from "node:net";
import { rateLimited } from "./errors.ts";
import { RateLimiter } from "./rate-limit.ts";

/**
 * Most peer addresses tracked at once: about 100 bytes each. Past it the
 * least recently seen address goes, and starts again with a full bucket.
 */
export const MAX_TRACKED_PEERS = 50_000;

/**
 * The rate limit that runs before authentication, per peer address
 * (`COFFER_PEER_RATE_LIMIT_RPS`): it bounds what a caller without a valid
 * token costs (token lookups, audit, logs), which the per-token limit,
 * running after authentication, cannot.
 *
 * Every call takes one from its address's bucket before its token is looked
 * up, and gets it back when the token turns out valid. So a peer may make
 * `burst` refused calls at once, then `ratePerSecond` per second; once its
 * bucket is empty, every call from it whose token this replica has not
 * verified before is RESOURCE_EXHAUSTED without a lookup. Calls with a
 * valid token never use up the bucket, and a token this replica has
 * verified before (and not refused since) is not limited here at all, so
 * valid clients behind an address shared with a flood keep being served;
 * a new valid token from that address waits for the bucket to refill. A
 * call whose token is being looked up already joins that lookup without
 * being charged (Authenticator.known): a client's first calls with a new
 * token, made at once, all wait for the first one's answer.
 */
export class PeerLimiter {
  private readonly buckets: RateLimiter;

  constructor(options: { ratePerSecond: number; maxPeers?: number; now?: () => number }) {
    this.buckets = new RateLimiter({
      ratePerSecond: options.ratePerSecond,
      maxBuckets: options.maxPeers ?? MAX_TRACKED_PEERS,
      ...(options.now !== undefined && { now: options.now }),
    });
  }

  /** Takes one call from `peer`'s address, or throws RESOURCE_EXHAUSTED. */
  admit(peer: string | undefined): void {
    if (this.buckets.take(peerAddress(peer))) return;
    throw rateLimited(
      `too many calls without a valid token from this address: at most ${this.buckets.ratePerSecond} per second (COFFER_PEER_RATE_LIMIT_RPS); retry after a short wait`,
      this.buckets.ratePerSecond,
    );
  }

  /** Gives back the call taken by admit(): its token was valid. */
  refund(peer: string | undefined): void {
    this.buckets.refund(peerAddress(peer));
  }

  /** How many addresses are tracked (for tests). */
  get size(): number {
    return this.buckets.size;
  }
}

/**
 * The address a peer (`address:port`, as the transports give it) is
 * limited and aggregated by: the IP without the port, an IPv4-mapped IPv6
 * address as IPv4, and an IPv6 address as its /64 network, since one host
 * commonly holds a whole /64. "unknown" when the transport could not tell.
 * Behind a proxy every caller has the proxy's address.
 */
export function peerAddress(peer: string | undefined): string {
  if (peer === undefined || peer === "") return "unknown";
  let host = peer;
  const colon = peer.lastIndexOf(":");
  if (colon > 0 && /^\d{1,5}$/.test(peer.slice(colon + 1))) {
    const before = peer.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
    if (!before.includes(":") || isIPv6(before)) host = before;
  }
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  if (mapped?.[1] !== undefined) return mapped[1];
  if (!isIPv6(host)) return host;
  return `${expandIPv6(host).slice(0, 4).join(":")}::/64`;
}

/** The eight groups of an IPv6 address, without leading zeros. */
function expandIPv6(address: string): string[] {
  const [head = "", tail] = address.toLowerCase().split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const fill = Array.from({ length: 8 - left.length - right.length }, () => "0");
  return [...left, ...fill, ...right].map((g) => g.replace(/^0+(?=.)/, ""));
}
