import { describe, expect, it } from "vitest";
import { Backoff, sleep } from "./backoff.ts";

describe("Backoff", () => {
  it("doubles its ceiling from 100 ms to 30 s, and resets", () => {
    const backoff = new Backoff({ random: () => 0.999999 });
    const delays = Array.from({ length: 12 }, () => backoff.next());
    expect(delays).toEqual([
      99, 199, 399, 799, 1599, 3199, 6399, 12799, 25599, 29999, 29999, 29999,
    ]);
    backoff.reset();
    expect(backoff.next()).toBe(99);
  });

  it("draws each delay uniformly below the ceiling (full jitter), never negative or past it", () => {
    const backoff = new Backoff({ initialDelayMs: 100, maxDelayMs: 30_000 });
    const seen: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const ceiling = backoff.ceilingMs;
      const delay = backoff.next();
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(ceiling);
      if (ceiling === 30_000) seen.push(delay);
    }
    // Spread over the whole range, not bunched at the top.
    expect(Math.min(...seen)).toBeLessThan(3000);
    expect(Math.max(...seen)).toBeGreaterThan(27_000);
    expect(new Backoff({ random: () => 0 }).next()).toBe(0);
  });

  it("keeps its ceiling at the maximum after many attempts", () => {
    const backoff = new Backoff({ initialDelayMs: 100, maxDelayMs: 500 });
    for (let i = 0; i < 5000; i++) backoff.next();
    expect(backoff.ceilingMs).toBe(500);
  });
});

describe("sleep", () => {
  it("ends early when its signal aborts", async () => {
    const controller = new AbortController();
    const started = performance.now();
    setTimeout(() => controller.abort(), 20);
    await sleep(10_000, controller.signal);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});
