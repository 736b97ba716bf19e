import { describe, expect, it } from "vitest";
import { DataKeyCache } from "./data-key-cache.ts";

const wrapped = (n: number) => Uint8Array.of(n, 1, 2, 3);

/** A cache on a clock the test moves, and an unwrap that counts its calls. */
function setup(maxEntries = 2, maxAgeMs = 1000) {
  let now = 0;
  const cache = new DataKeyCache(maxEntries, maxAgeMs, () => now);
  const made: Buffer[] = [];
  const unwrap = () => {
    const key = Buffer.alloc(32, made.length + 1);
    made.push(key);
    return key;
  };
  return { cache, made, unwrap, tick: (ms: number) => (now += ms) };
}

describe("DataKeyCache", () => {
  const master = Buffer.alloc(32, 7);

  it("unwraps a data key once, then hands the same key back", () => {
    const { cache, made, unwrap } = setup();
    const first = cache.get(master, "k1", wrapped(1), unwrap);
    expect(cache.get(master, "k1", wrapped(1), unwrap)).toBe(first);
    expect(made).toHaveLength(1);
  });

  it("finds an entry only under the same master key object, key id and wrapped bytes", () => {
    const { cache, made, unwrap } = setup(10);
    cache.get(master, "k1", wrapped(1), unwrap);
    cache.get(Buffer.from(master), "k1", wrapped(1), unwrap);
    cache.get(master, "k2", wrapped(1), unwrap);
    cache.get(master, "k1", wrapped(2), unwrap);
    expect(made).toHaveLength(4);
  });

  it("unwraps again after maxAgeMs, and zeroes the key it drops", () => {
    const { cache, made, unwrap, tick } = setup();
    const first = cache.get(master, "k1", wrapped(1), unwrap);
    tick(999);
    expect(cache.get(master, "k1", wrapped(1), unwrap)).toBe(first);
    tick(1);
    const second = cache.get(master, "k1", wrapped(1), unwrap);
    expect(second).not.toBe(first);
    expect(made).toHaveLength(2);
    expect(first.every((b) => b === 0)).toBe(true);
    expect(second.every((b) => b === 2)).toBe(true);
  });

  it("holds at most maxEntries keys per master key, dropping and zeroing the oldest", () => {
    const { cache, made, unwrap, tick } = setup(2);
    const a = cache.get(master, "k1", wrapped(1), unwrap);
    tick(1);
    const b = cache.get(master, "k1", wrapped(2), unwrap);
    tick(1);
    cache.get(master, "k1", wrapped(3), unwrap);
    expect(a.every((x) => x === 0)).toBe(true);
    expect(b.every((x) => x === 2)).toBe(true);
    expect(cache.get(master, "k1", wrapped(2), unwrap)).toBe(b);
    cache.get(master, "k1", wrapped(1), unwrap);
    expect(made).toHaveLength(4);
  });

  it("keeps nothing when the unwrap fails", () => {
    const { cache, made, unwrap } = setup();
    const failing = () => {
      throw new Error("wrapped key failed authentication");
    };
    expect(() => cache.get(master, "k1", wrapped(1), failing)).toThrow("failed authentication");
    cache.get(master, "k1", wrapped(1), unwrap);
    expect(made).toHaveLength(1);
  });
});
