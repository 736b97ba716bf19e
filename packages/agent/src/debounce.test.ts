import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Debouncer } from "./debounce.ts";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("Debouncer", () => {
  it("acts once after a burst, when the triggers have been quiet for the wait", async () => {
    let runs = 0;
    const d = new Debouncer(
      async () => {
        runs += 1;
      },
      { waitMs: 1000 },
    );
    for (let i = 0; i < 5; i++) {
      d.trigger();
      await vi.advanceTimersByTimeAsync(300);
    }
    expect(runs).toBe(0);
    await vi.advanceTimersByTimeAsync(999);
    expect(runs).toBe(1);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(runs).toBe(1);
    d.trigger();
    await vi.advanceTimersByTimeAsync(1000);
    expect(runs).toBe(2);
  });

  it("acts at the latest maxWait after a burst's first trigger under steady triggers", async () => {
    let runs = 0;
    const d = new Debouncer(
      async () => {
        runs += 1;
      },
      { waitMs: 1000, maxWaitMs: 5000 },
    );
    for (let i = 0; i < 20; i++) {
      d.trigger();
      await vi.advanceTimersByTimeAsync(500);
    }
    // 10 s of triggers every 500 ms: runs at 5 s and 10 s.
    expect(runs).toBe(2);
  });

  it("never overlaps runs: a trigger during a run gives one more run after it", async () => {
    let running = 0;
    let overlapped = false;
    let runs = 0;
    const d = new Debouncer(
      async () => {
        running += 1;
        if (running > 1) overlapped = true;
        runs += 1;
        await new Promise((r) => setTimeout(r, 3000));
        running -= 1;
      },
      { waitMs: 100 },
    );
    d.trigger();
    await vi.advanceTimersByTimeAsync(150);
    expect(runs).toBe(1);
    d.trigger();
    d.trigger();
    await vi.advanceTimersByTimeAsync(500);
    expect(runs).toBe(1);
    await vi.advanceTimersByTimeAsync(3000);
    expect(runs).toBe(2);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(runs).toBe(2);
    expect(overlapped).toBe(false);
  });

  it("runs a pending action at close when asked to flush, and ignores triggers after", async () => {
    let runs = 0;
    const d = new Debouncer(
      async () => {
        runs += 1;
      },
      { waitMs: 1000 },
    );
    d.trigger();
    await d.close(true);
    expect(runs).toBe(1);
    d.trigger();
    await vi.advanceTimersByTimeAsync(5000);
    expect(runs).toBe(1);

    const dropped = new Debouncer(
      async () => {
        runs += 1;
      },
      { waitMs: 1000 },
    );
    dropped.trigger();
    await dropped.close(false);
    expect(runs).toBe(1);
  });
});
