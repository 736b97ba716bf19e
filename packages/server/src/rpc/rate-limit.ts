import { rateLimited } from "./errors.ts";

export interface RateLimiterOptions {
  /** Tokens added to each bucket per second: the sustained rate. Must be > 0. */
  ratePerSecond: number;
  /** Bucket size: how many calls may arrive at once after a quiet spell. Default 2x the rate. */
  burst?: number;
  /** Milliseconds, monotonic; injectable for tests. Default `performance.now`. */
  now?: () => number;
  /**
   * Hard cap on buckets held. The idle eviction below normally keeps far
   * fewer; past the cap the least recently used bucket goes (that key starts
   * again with a full bucket).
   */
  maxBuckets?: number;
}

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date. */
  at: number;
}

/**
 * A token bucket per key (per access token id), in this process: each key
 * may make `burst` calls at once, then `ratePerSecond` calls per second.
 *
 * Memory stays bounded: the map is kept in least-recently-used order (a call
 * re-inserts its key), and every call drops buckets from the old end that
 * have been idle long enough to be full again. A full bucket is what a new
 * key gets anyway, so eviction never changes an answer. (lru-cache would
 * allocate its arrays for `maxBuckets` up front, 2.7 MiB at 100,000 before
 * any call, and keep idle buckets until the cap pushes them out;
 * rate-limiter-flexible's memory store has no cap and a timer per key.)
 */
export class RateLimiter {
  readonly ratePerSecond: number;
  readonly burst: number;
  private readonly now: () => number;
  private readonly maxBuckets: number;
  /** Idle this long, any bucket has refilled to `burst`. */
  private readonly refillMs: number;
  private readonly buckets = new Map<string, Bucket>();

  constructor(options: RateLimiterOptions) {
    if (!(options.ratePerSecond > 0)) throw new Error("ratePerSecond must be > 0");
    this.ratePerSecond = options.ratePerSecond;
    this.burst = Math.max(1, options.burst ?? 2 * options.ratePerSecond);
    this.now = options.now ?? (() => performance.now());
    this.maxBuckets = Math.max(1, options.maxBuckets ?? 100_000);
    this.refillMs = (this.burst / this.ratePerSecond) * 1000;
  }

  /** Takes one call's token from `key`'s bucket; false when the bucket is empty. */
  take(key: string): boolean {
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    bucket.tokens = Math.min(
      this.burst,
      bucket.tokens + ((now - bucket.at) / 1000) * this.ratePerSecond,
    );
    bucket.at = now;
    // The epsilon absorbs floating-point drift from adding fractions of a token.
    const allowed = bucket.tokens >= 1 - 1e-9;
    if (allowed) bucket.tokens -= 1;
    this.buckets.delete(key);
    this.buckets.set(key, bucket);
    this.evict(now);
    return allowed;
  }

  /** Gives back a call's token taken from `key`'s bucket (it turned out not to count). */
  refund(key: string): void {
    const bucket = this.buckets.get(key);
    if (bucket !== undefined) bucket.tokens = Math.min(this.burst, bucket.tokens + 1);
  }

  /**
   * Admits one call by `tokenId`, or throws RESOURCE_EXHAUSTED naming the
   * limit and its setting.
   */
  admit(tokenId: string): void {
    if (this.take(tokenId)) return;
    throw rateLimited(
      `token ${tokenId} exceeded its rate limit of ${this.ratePerSecond} requests per second (COFFER_RATE_LIMIT_RPS); retry after a short wait`,
      this.ratePerSecond,
    );
  }

  /** How many buckets are held (for tests). */
  get size(): number {
    return this.buckets.size;
  }

  private evict(now: number): void {
    for (const [key, bucket] of this.buckets) {
      if (this.buckets.size <= this.maxBuckets && now - bucket.at < this.refillMs) return;
      this.buckets.delete(key);
    }
  }
}
