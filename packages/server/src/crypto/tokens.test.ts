import { describe, expect, it } from "vitest";
import { displayPrefix, generateToken, hashToken, isWellFormedToken } from "./tokens.ts";

describe("tokens", () => {
  it("are coffer_ + 49 base62 characters with a valid checksum, and differ every time", () => {
    const a = generateToken();
    const b = generateToken();
    expect(a.value).toMatch(/^coffer_[0-9A-Za-z]{49}$/);
    expect(a.value).not.toBe(b.value);
    expect(isWellFormedToken(a.value)).toBe(true);
    expect(a.prefix).toBe(displayPrefix(a.value));
    expect(a.prefix).toHaveLength(11);
    expect(Buffer.from(a.hash).equals(Buffer.from(hashToken(a.value)))).toBe(true);
  });

  it("refuses a token with one character changed, or of another shape", () => {
    const { value } = generateToken();
    const i = 10;
    const changed = value.slice(0, i) + (value[i] === "a" ? "b" : "a") + value.slice(i + 1);
    expect(isWellFormedToken(changed)).toBe(false);
    expect(isWellFormedToken(value.slice(0, -1))).toBe(false);
    expect(isWellFormedToken(`x${value}`)).toBe(false);
    expect(isWellFormedToken("")).toBe(false);
  });
});
