import { Backoff } from "@coffer/client";
import { describe, expect, it } from "vitest";
import { memoryLogger } from "./fake-coffer.ts";
import type { Outcome, Unit } from "./reconcile.ts";
import { UnitRunner } from "./runner.ts";

const unit: Unit = {
  key: "/a@latest_enabled",
  ref: { kind: "location", path: "/", name: "a" },
  revision: "latest_enabled",
  files: [],
  secretDeleted: false,
};

/** A reconcile whose runs the test finishes by hand. */
function controlled() {
  const runs: ((o: Outcome) => void)[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const reconcile = () =>
    new Promise<Outcome>((resolve) => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      runs.push((o) => {
        inFlight -= 1;
        resolve(o);
      });
    });
  return { runs, reconcile, maxInFlight: () => maxInFlight };
}

const tick = () => new Promise((r) => setTimeout(r, 5));
const written: Outcome = { kind: "done", result: "written" };

describe("UnitRunner", () => {
  it("keeps one reconcile in flight and folds the requests made meanwhile into one more", async () => {
    const c = controlled();
    const runner = new UnitRunner(unit, c.reconcile, {
      signal: new AbortController().signal,
      logger: memoryLogger().logger,
    });
    const first = runner.schedule();
    await tick();
    const later = Array.from({ length: 10 }, () => runner.schedule());
    await tick();
    expect(c.runs).toHaveLength(1);
    c.runs[0]?.(written);
    expect(await first).toEqual(written);
    await tick();
    expect(c.runs).toHaveLength(2);
    c.runs[1]?.({ kind: "done", result: "unchanged" });
    expect(await Promise.all(later)).toEqual(Array(10).fill({ kind: "done", result: "unchanged" }));
    expect(c.maxInFlight()).toBe(1);
    await runner.idle();
    expect(c.runs).toHaveLength(2);
  });

  it("retries a retry outcome with backoff, and gives up after maxAttempts", async () => {
    let calls = 0;
    const log = memoryLogger();
    const runner = new UnitRunner(
      unit,
      async () => {
        calls += 1;
        return { kind: "retry", reason: "Unavailable: down" };
      },
      {
        signal: new AbortController().signal,
        logger: log.logger,
        maxAttempts: 4,
        backoff: () => new Backoff({ initialDelayMs: 1, maxDelayMs: 4 }),
      },
    );
    expect(await runner.schedule()).toEqual({ kind: "retry", reason: "Unavailable: down" });
    expect(calls).toBe(4);
    expect(log.lines.filter((l) => l.msg === "reconcile failed; trying again")).toHaveLength(3);
  });

  it("answers undefined to pending requests when stopped", async () => {
    const controller = new AbortController();
    const runner = new UnitRunner(unit, async () => ({ kind: "retry", reason: "down" }), {
      signal: controller.signal,
      logger: memoryLogger().logger,
      backoff: () => new Backoff({ initialDelayMs: 60_000, maxDelayMs: 60_000 }),
    });
    const pending = runner.schedule();
    await tick();
    controller.abort();
    expect(await pending).toBeUndefined();
    expect(await runner.schedule()).toBeUndefined();
  });
});
