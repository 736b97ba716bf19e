import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { RateLimiter } from "./rate-limit.ts";

function fakeClock() {
  let t = 1_000;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

/** How many calls in a row `key` is allowed right now. */
function drain(limiter: RateLimiter, key: string, max = 10_000): number {
  let n = 0;
  while (n < max && limiter.take(key)) n++;
  return n;
}

describe("RateLimiter", () => {
  it("allows a burst of twice the rate, then refuses", () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ ratePerSecond: 10, now: clock.now });
    expect(drain(limiter, "a")).toBe(20);
    expect(limiter.take("a")).toBe(false);
  });

  it("refills at the rate, never beyond the burst", () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ ratePerSecond: 10, now: clock.now });
    drain(limiter, "a");
    clock.advance(99);
    expect(limiter.take("a")).toBe(false);
    clock.advance(1);
    expect(limiter.take("a")).toBe(true);
    expect(limiter.take("a")).toBe(false);
    clock.advance(500);
    expect(drain(limiter, "a")).toBe(5);
    clock.advance(3_600_000);
    expect(drain(limiter, "a")).toBe(20);
  });

  it("sustains exactly the rate under constant pressure", () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ ratePerSecond: 50, now: clock.now });
    drain(limiter, "a");
    let allowed = 0;
    for (let ms = 0; ms < 10_000; ms++) {
      clock.advance(1);
      if (limiter.take("a")) allowed++;
    }
    expect(allowed).toBe(500);
  });

  it("keeps a bucket per key", () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ ratePerSecond: 5, now: clock.now });
    expect(drain(limiter, "a")).toBe(10);
    expect(limiter.take("a")).toBe(false);
    expect(drain(limiter, "b")).toBe(10);
    expect(limiter.take("a")).toBe(false);
  });

  it("honours an explicit burst", () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ ratePerSecond: 100, burst: 3, now: clock.now });
    expect(drain(limiter, "a")).toBe(3);
  });

  it("evicts buckets once idle long enough to be full, without changing any answer", () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ ratePerSecond: 10, now: clock.now });
    for (let i = 0; i < 1_000; i++) limiter.take(`idle-${i}`);
    expect(limiter.size).toBe(1_000);
    drain(limiter, "busy");
    // 2 s refills a 20-call bucket at 10 per second.
    clock.advance(1_999);
    limiter.take("busy");
    expect(limiter.size).toBe(1_001);
    clock.advance(1);
    expect(limiter.take("busy")).toBe(true);
    expect(limiter.size).toBe(1);
    // An evicted key starts full, as it would have been anyway.
    expect(drain(limiter, "idle-0")).toBe(20);
  });

  it("never holds more than maxBuckets, dropping the least recently used", () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ ratePerSecond: 1, now: clock.now, maxBuckets: 100 });
    for (let i = 0; i < 10_000; i++) limiter.take(`k-${i}`);
    expect(limiter.size).toBe(100);
    drain(limiter, "k-9999");
    limiter.take("new");
    // k-9999 was used last before "new": still held, still empty.
    expect(limiter.take("k-9999")).toBe(false);
  });

  it("admit throws RESOURCE_EXHAUSTED naming the token, the limit and the setting", () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ ratePerSecond: 1, now: clock.now });
    limiter.admit("tok-1");
    limiter.admit("tok-1");
    let error: unknown;
    try {
      limiter.admit("tok-1");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((error as ConnectError).rawMessage).toBe(
      "token tok-1 exceeded its rate limit of 1 requests per second (COFFER_RATE_LIMIT_RPS); retry after a short wait",
    );
  });

  it("refuses a rate that is not positive", () => {
    expect(() => new RateLimiter({ ratePerSecond: 0 })).toThrow(/ratePerSecond/);
  });
});
