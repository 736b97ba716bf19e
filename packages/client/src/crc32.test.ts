import { randomBytes } from "node:crypto";
import { crc32 as zlibCrc32 } from "node:zlib";
import { describe, expect, it } from "vitest";
import { crc32 } from "./crc32.ts";

describe("crc32", () => {
  it("gives the IEEE check values", () => {
    expect(crc32(new Uint8Array())).toBe(0);
    expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(32).fill(0xff))).toBe(0xff6cab0b);
  });

  it("agrees with zlib, which the server uses, on random payloads up to 64 KiB", () => {
    for (const size of [1, 3, 255, 4096, 65_536]) {
      const data = randomBytes(size);
      expect(crc32(data)).toBe(zlibCrc32(data));
    }
  });
});
