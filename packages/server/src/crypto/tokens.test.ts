import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  canonicalToken,
  displayPrefix,
  generateScalewayKey,
  generateToken,
  hashToken,
  isWellFormedToken,
  MAX_EVEN_RUN,
  MIN_DISTINCT_CHARS,
  tokenFromSecret,
  weakTokenReason,
} from "./tokens.ts";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** The well-formed token (valid checksum) whose 43-character body is `body`. */
function tokenWithBody(body: string): string {
  let n = 0n;
  for (const c of body) n = n * 62n + BigInt(ALPHABET.indexOf(c));
  const secret = Buffer.from(n.toString(16).padStart(64, "0"), "hex");
  const { value } = tokenFromSecret(secret);
  expect(value.slice(7, 50)).toBe(body);
  expect(isWellFormedToken(value)).toBe(true);
  return value;
}

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

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("Scaleway-style keys", () => {
  it("are an SCW access key id and a lower-case UUID v4 secret key, hashed as stored", () => {
    const key = generateScalewayKey();
    expect(key.accessKey).toMatch(/^SCW[A-Z0-9]{17}$/);
    expect(key.value).toMatch(UUID_V4);
    expect(key.prefix).toBe(key.accessKey);
    const sha = createHash("sha256").update(key.value.toLowerCase()).digest();
    expect(Buffer.from(key.hash).equals(sha)).toBe(true);
  });

  it("differ every time, and use the whole access key alphabet", () => {
    const keys = Array.from({ length: 2_000 }, generateScalewayKey);
    expect(new Set(keys.map((k) => k.value)).size).toBe(keys.length);
    expect(new Set(keys.map((k) => k.accessKey)).size).toBe(keys.length);
    // 34,000 draws from 36 characters: each is seen (a missing one has odds below 1e-400).
    const seen = new Set(keys.flatMap((k) => [...k.accessKey.slice(3)]));
    expect([...seen].sort().join("")).toBe("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ");
  });

  it("are looked up by their lower-case form, typed in any case", () => {
    const { value } = generateScalewayKey();
    expect(canonicalToken(value)).toBe(value);
    expect(canonicalToken(value.toUpperCase())).toBe(value);
    const mixed = [...value].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join("");
    expect(canonicalToken(mixed)).toBe(value);
  });

  it("leave a Coffer token's case alone, and refuse what is shaped like neither", () => {
    const { value } = generateToken();
    expect(canonicalToken(value)).toBe(value);
    expect(canonicalToken(value.toLowerCase())).toBeUndefined();
    const uuid = generateScalewayKey().value;
    for (const bad of [
      "",
      uuid.slice(1),
      `${uuid}0`,
      uuid.replaceAll("-", ""),
      ` ${uuid}`,
      uuid.replace(/^./, "g"),
      // Not a version 4 UUID, or not the RFC 9562 variant.
      `${uuid.slice(0, 14)}1${uuid.slice(15)}`,
      `${uuid.slice(0, 19)}c${uuid.slice(20)}`,
      "SCW0123456789ABCDEFG",
    ]) {
      expect(canonicalToken(bad)).toBeUndefined();
    }
  });
});

describe("the weak-token rule (COFFER_BOOTSTRAP_TOKEN)", () => {
  it("never refuses a generated token (20,000 of them)", () => {
    let fewestDistinct = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 20_000; i++) {
      const { value } = generateToken();
      const reason = weakTokenReason(value);
      if (reason !== undefined) throw new Error(`a generated token was refused: ${reason}`);
      fewestDistinct = Math.min(fewestDistinct, new Set(value.slice(7, 50)).size);
    }
    // Far from the threshold, as the computed odds say (below 5e-13).
    expect(fewestDistinct).toBeGreaterThan(MIN_DISTINCT_CHARS + 4);
  });

  it("refuses the token of an all-zero secret, though its checksum is valid", () => {
    const zero = tokenFromSecret(new Uint8Array(32)).value;
    expect(zero).toBe(`coffer_${"0".repeat(43)}${zero.slice(50)}`);
    expect(isWellFormedToken(zero)).toBe(true);
    expect(weakTokenReason(zero)).toMatch(/only 1 different characters/);
  });

  it("refuses repeated patterns, sequences and long evenly stepping runs", () => {
    const random = generateToken().value.slice(7, 50);
    const cases = {
      pattern: `0${"abc".repeat(14)}`,
      ascending: `0${ALPHABET.slice(1, 43)}`,
      descending: `0${[...ALPHABET.slice(20, 62)].reverse().join("")}`,
      "a run of 9 repeats inside random text":
        `0${random.slice(1, 30)}${"Q".repeat(9)}${random.slice(39)}`.slice(0, 43),
      "a run of 9 stepping by 2": `0${random.slice(1, 30)}acegikmoq${random.slice(39)}`.slice(
        0,
        43,
      ),
    };
    for (const [name, body] of Object.entries(cases)) {
      expect(body, name).toHaveLength(43);
      expect(weakTokenReason(tokenWithBody(body)), name).toBeDefined();
    }
  });

  it("accepts a run of exactly the allowed length", () => {
    let body: string;
    do {
      const random = generateToken().value.slice(7, 50);
      // Break the run on both sides with characters off its step.
      body = `0${random.slice(1, 20)}Z${"k".repeat(MAX_EVEN_RUN)}Z${random.slice(30)}`.slice(0, 43);
    } while (new Set(body).size < MIN_DISTINCT_CHARS);
    expect(weakTokenReason(tokenWithBody(body))).toBeUndefined();
  });

  it("never repeats the value in its reason", () => {
    const zero = tokenFromSecret(new Uint8Array(32)).value;
    expect(weakTokenReason(zero)).not.toContain("0000");
  });
});
