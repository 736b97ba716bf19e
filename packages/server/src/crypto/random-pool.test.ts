import { describe, expect, it } from "vitest";
import { fillRandom } from "./random-pool.ts";

describe("fillRandom", () => {
  it("hands out fresh bytes on every call, across refills of its pool", () => {
    // 56 bytes is one sealing's draw; 2,000 of them span 27 refills.
    const seen = new Set<string>();
    const counts = new Array<number>(256).fill(0);
    for (let i = 0; i < 2_000; i++) {
      const b = fillRandom(Buffer.alloc(56));
      seen.add(b.toString("hex"));
      for (const x of b) counts[x] = (counts[x] as number) + 1;
    }
    expect(seen.size).toBe(2_000);
    // 112,000 bytes: each value is expected 437.5 times; a stuck or zeroed
    // region (bytes handed out twice, or after they were cleared) would
    // push 0 far past that.
    expect(Math.max(...counts)).toBeLessThan(600);
    expect(Math.min(...counts)).toBeGreaterThan(300);
  });

  it("fills targets of any size, up to and past its pool, and returns them", () => {
    for (const n of [0, 1, 12, 32, 4_095, 4_096, 4_097, 10_000]) {
      const target = new Uint8Array(n);
      expect(fillRandom(target)).toBe(target);
      if (n >= 32) expect(target.some((x) => x !== 0)).toBe(true);
    }
  });
});
