import { describe, expect, it } from "vitest";
import { DataKeyCache, dataKeyId } from "./data-key-cache.ts";

const key = (byte: number) => Buffer.alloc(32, byte);

describe("DataKeyCache", () => {
  it("keeps a copy, so the caller may zero its own", () => {
    const cache = new DataKeyCache(4);
    const mine = key(7);
    cache.set("a", mine);
    mine.fill(0);
    expect(cache.get("a")).toEqual(key(7));
  });

  it("keeps at most its bound, evicting and zeroing the least recently used", () => {
    const cache = new DataKeyCache(2);
    cache.set("a", key(1));
    cache.set("b", key(2));
    const a = cache.get("a");
    const b = cache.get("b");
    // a read after b was set: b is now the newest, a the oldest.
    cache.get("b");
    cache.set("c", key(3));
    expect(cache.size).toBe(2);
    expect(cache.get("a")).toBeUndefined();
    expect(a?.every((x) => x === 0)).toBe(true);
    expect(b).toEqual(key(2));
    expect(cache.get("c")).toEqual(key(3));
  });

  it("zeroes and forgets every key when wiped", () => {
    const cache = new DataKeyCache(4);
    cache.set("a", key(1));
    cache.set("b", key(2));
    const held = [cache.get("a"), cache.get("b")];
    cache.wipe();
    expect(cache.size).toBe(0);
    for (const k of held) expect(k?.every((x) => x === 0)).toBe(true);
  });

  it("names an entry by the key id and the wrapped bytes together", () => {
    const wrapped = Buffer.alloc(60, 9);
    expect(dataKeyId("k1", wrapped)).toBe(dataKeyId("k1", Buffer.alloc(60, 9)));
    expect(dataKeyId("k1", wrapped)).not.toBe(dataKeyId("k2", wrapped));
    expect(dataKeyId("k1", wrapped)).not.toBe(dataKeyId("k1", Buffer.alloc(60, 8)));
    // Neither the id nor the bytes show through.
    expect(dataKeyId("k1", wrapped)).not.toContain(wrapped.toString("base64").slice(0, 8));
  });
});
