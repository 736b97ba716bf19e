import { createDecipheriv } from "node:crypto";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { CryptoError, open, rewrap, type Sealed, seal, versionAad } from "./envelope.ts";
import { generateKey, type KeyRing } from "./key-ring.ts";

// fillRandom is wrapped, not replaced, so that the test can see the data
// keys seal() draws and check that they were zeroed afterwards.
const drawn = vi.hoisted(() => ({ buffers: [] as Uint8Array[] }));
vi.mock("./random-pool.ts", async (importOriginal) => {
  const actual = await importOriginal<typeof import("./random-pool.ts")>();
  return {
    fillRandom: <T extends Uint8Array>(target: T): T => {
      drawn.buffers.push(actual.fillRandom(target));
      return target;
    },
  };
});

const text = new TextEncoder();
const plaintext = text.encode("postgres://app:hunter2@db/prod");

function ring(activeId: string, keys: Record<string, Buffer>): KeyRing {
  return { activeId, keys: new Map(Object.entries(keys)) };
}

/** Independent reading of the documented format: nonce || ciphertext || tag. */
function gcmOpen(key: Uint8Array, box: Uint8Array, aad: Uint8Array): Buffer {
  const decipher = createDecipheriv("aes-256-gcm", key, box.subarray(0, 12), {
    authTagLength: 16,
  });
  decipher.setAuthTag(box.subarray(box.length - 16));
  decipher.setAAD(aad);
  return Buffer.concat([decipher.update(box.subarray(12, box.length - 16)), decipher.final()]);
}

function flipped(bytes: Uint8Array, index: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[index] = (copy[index] ?? 0) ^ 0x01;
  return copy;
}

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    if (error instanceof Error) {
      return error;
    }
    throw new Error(`threw a non-Error: ${String(error)}`);
  }
  throw new Error("expected a throw");
}

describe("envelope", () => {
  const k1 = generateKey();
  const ring1 = ring("k1", { k1 });
  const aad = versionAad("sec_123", 1);

  beforeEach(() => {
    drawn.buffers.length = 0;
  });

  it("round-trips plaintexts of any size, including empty", () => {
    for (const input of [plaintext, new Uint8Array(0), new Uint8Array(1 << 20).fill(7)]) {
      const sealed = seal(input, aad, ring1);
      expect(sealed.keyId).toBe("k1");
      expect(sealed.ciphertext.length).toBe(12 + input.length + 16);
      expect(sealed.wrappedKey.length).toBe(12 + 32 + 16);
      expect(Buffer.from(open(sealed, aad, ring1)).equals(Buffer.from(input))).toBe(true);
    }
  });

  it("follows the documented layout: DEK wrapped under the master key with its id as AAD", () => {
    const sealed = seal(plaintext, aad, ring1);
    const dataKey = gcmOpen(k1, sealed.wrappedKey, text.encode("k1"));
    expect(dataKey.length).toBe(32);
    expect(gcmOpen(dataKey, sealed.ciphertext, aad).toString()).toBe(
      "postgres://app:hunter2@db/prod",
    );
  });

  it("draws a fresh data key and fresh nonces for every seal", () => {
    const a = seal(plaintext, aad, ring1);
    const b = seal(plaintext, aad, ring1);
    expect(Buffer.from(a.ciphertext).equals(Buffer.from(b.ciphertext))).toBe(false);
    expect(Buffer.from(a.wrappedKey).equals(Buffer.from(b.wrappedKey))).toBe(false);
    expect(Buffer.from(a.ciphertext.subarray(0, 12))).not.toEqual(
      Buffer.from(b.ciphertext.subarray(0, 12)),
    );
    const keyA = gcmOpen(k1, a.wrappedKey, text.encode("k1"));
    const keyB = gcmOpen(k1, b.wrappedKey, text.encode("k1"));
    expect(keyA.equals(keyB)).toBe(false);
  });

  it("zeroes the data key once the seal is done", () => {
    const sealed = seal(plaintext, aad, ring1);
    const dataKeys = drawn.buffers.filter((b) => b.length === 32);
    expect(dataKeys).toHaveLength(1);
    expect(dataKeys[0]?.every((byte) => byte === 0)).toBe(true);
    // And the zeroed buffer was not the one in use: the row still opens.
    expect(Buffer.from(open(sealed, aad, ring1)).toString()).toBe("postgres://app:hunter2@db/prod");
  });

  it("rejects a change to any byte of the ciphertext", () => {
    const sealed = seal(plaintext, aad, ring1);
    for (let i = 0; i < sealed.ciphertext.length; i++) {
      const tampered = { ...sealed, ciphertext: flipped(sealed.ciphertext, i) };
      expect(() => open(tampered, aad, ring1), `byte ${i}`).toThrowError(
        new CryptoError("payload failed authentication"),
      );
    }
  });

  it("rejects a change to any byte of the wrapped key", () => {
    const sealed = seal(plaintext, aad, ring1);
    for (let i = 0; i < sealed.wrappedKey.length; i++) {
      const tampered = { ...sealed, wrappedKey: flipped(sealed.wrappedKey, i) };
      expect(() => open(tampered, aad, ring1), `byte ${i}`).toThrowError(
        new CryptoError("wrapped key failed authentication"),
      );
    }
  });

  it("rejects truncated inputs", () => {
    const sealed = seal(plaintext, aad, ring1);
    const short: Sealed = { ...sealed, ciphertext: sealed.ciphertext.subarray(0, 27) };
    expect(() => open(short, aad, ring1)).toThrowError(CryptoError);
    const noTag: Sealed = { ...sealed, ciphertext: sealed.ciphertext.subarray(0, -1) };
    expect(() => open(noTag, aad, ring1)).toThrowError(CryptoError);
    const shortKey: Sealed = { ...sealed, wrappedKey: sealed.wrappedKey.subarray(0, 59) };
    expect(() => open(shortKey, aad, ring1)).toThrowError("wrapped key must be 60 bytes (got 59)");
  });

  it("rejects rows swapped between secrets or revisions", () => {
    const rowA = seal(text.encode("secret A"), versionAad("sec_A", 1), ring1);
    const rowB = seal(text.encode("secret B"), versionAad("sec_B", 1), ring1);
    expect(() => open(rowA, versionAad("sec_B", 1), ring1)).toThrowError(
      "payload failed authentication",
    );
    expect(() => open(rowB, versionAad("sec_A", 1), ring1)).toThrowError(
      "payload failed authentication",
    );
    expect(() => open(rowA, versionAad("sec_A", 2), ring1)).toThrowError(
      "payload failed authentication",
    );
    expect(Buffer.from(open(rowA, versionAad("sec_A", 1), ring1)).toString()).toBe("secret A");
  });

  it("rejects a wrapped key relabelled with another id, even one with the same key bytes", () => {
    const twin = ring("k1", { k1, k2: k1 });
    const sealed = seal(plaintext, aad, twin);
    expect(() => open({ ...sealed, keyId: "k2" }, aad, twin)).toThrowError(
      "wrapped key failed authentication",
    );
  });

  it("refuses, once a version has been opened, what it refused before: its data key stays unwrapped only for the same key and bytes", () => {
    const twin = ring("k1", { k1, k2: k1 });
    const sealed = seal(plaintext, aad, twin);
    expect(Buffer.from(open(sealed, aad, twin)).toString()).toBe("postgres://app:hunter2@db/prod");
    // The data key is now cached under k1 and these wrapped bytes.
    expect(() => open({ ...sealed, keyId: "k2" }, aad, twin)).toThrowError(
      "wrapped key failed authentication",
    );
    expect(() =>
      open({ ...sealed, wrappedKey: flipped(sealed.wrappedKey, 20) }, aad, twin),
    ).toThrowError("wrapped key failed authentication");
    expect(() => open(sealed, versionAad("sec_123", 2), twin)).toThrowError(
      "payload failed authentication",
    );
    // A ring without the key, or with other bytes under its id (another key object).
    expect(() => open(sealed, aad, ring("k3", { k3: generateKey() }))).toThrowError(
      'unknown master key id "k1"',
    );
    expect(() => open(sealed, aad, ring("k1", { k1: generateKey() }))).toThrowError(
      "wrapped key failed authentication",
    );
    // The same bytes under a reloaded ring (a copy of the key) still open it.
    const reloaded = ring("k1", { k1: Buffer.from(k1) });
    expect(Buffer.from(open(sealed, aad, reloaded)).toString()).toBe(
      "postgres://app:hunter2@db/prod",
    );
  });

  it("names an unknown key id and nothing secret", () => {
    const sealed = seal(plaintext, aad, ring1);
    const other = ring("k3", { k3: generateKey() });
    const error = thrown(() => open({ ...sealed, keyId: "k2" }, aad, other));
    expect(error).toBeInstanceOf(CryptoError);
    expect(error.message).toBe('unknown master key id "k2"');
    const wrong = thrown(() => open(sealed, aad, ring("k1", { k1: generateKey() })));
    expect(wrong.message).not.toContain("hunter2");
    expect(wrong.message).not.toContain(k1.toString("base64"));
    expect(wrong.message).not.toContain(k1.toString("hex"));
  });

  it("refuses to seal when the active key is missing or malformed", () => {
    expect(() => seal(plaintext, aad, ring("k9", { k1 }))).toThrowError(
      'unknown master key id "k9"',
    );
    expect(() => seal(plaintext, aad, ring("k1", { k1: Buffer.alloc(16) }))).toThrowError(
      'master key "k1" must be 32 bytes',
    );
  });

  it("rewraps to the new active key without touching the payload", () => {
    const k2 = generateKey();
    const sealed = seal(plaintext, aad, ring1);
    const oldWrapped = Uint8Array.from(sealed.wrappedKey);
    const oldCiphertext = Uint8Array.from(sealed.ciphertext);

    const rotated = rewrap(sealed, ring("k2", { k2, k1 }));
    expect(rotated.keyId).toBe("k2");
    expect(Buffer.from(sealed.wrappedKey).equals(oldWrapped)).toBe(true);
    expect(Buffer.from(sealed.ciphertext).equals(oldCiphertext)).toBe(true);
    expect(Buffer.from(rotated.wrappedKey).equals(oldWrapped)).toBe(false);

    const onlyK2 = ring("k2", { k2 });
    const moved: Sealed = { ...sealed, ...rotated };
    expect(Buffer.from(open(moved, aad, onlyK2)).toString()).toBe("postgres://app:hunter2@db/prod");
    expect(() => open(moved, aad, ring1)).toThrowError('unknown master key id "k2"');
    expect(() => open(sealed, aad, onlyK2)).toThrowError('unknown master key id "k1"');
    // A rotation that lost the old key cannot proceed.
    expect(() => rewrap(sealed, onlyK2)).toThrowError('unknown master key id "k1"');
  });

  it("encodes associated data as coffer:v1:<secretId>:<revision>", () => {
    expect(new TextDecoder().decode(versionAad("sec_123", 42))).toBe("coffer:v1:sec_123:42");
    expect(() => versionAad("", 1)).toThrowError(CryptoError);
    expect(() => versionAad("s", -1)).toThrowError(CryptoError);
    expect(() => versionAad("s", 1.5)).toThrowError(CryptoError);
    expect(() => versionAad("s", Number.NaN)).toThrowError(CryptoError);
  });
});
