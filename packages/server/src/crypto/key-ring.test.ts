import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  createKeyFile,
  generateKey,
  KeyRingError,
  loadKeyFile,
  loadOrCreateKeyFile,
  parseMasterKeys,
  serializeKeyFile,
} from "./key-ring.ts";

// Writes through file handles can be slowed down, so that a key file being
// created stays unfinished long enough for a concurrent caller to find it.
const slow = vi.hoisted(() => ({ writes: false }));
vi.mock("node:fs/promises", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs/promises")>();
  const open: typeof actual.open = async (...args) => {
    const handle = await actual.open(...args);
    if (slow.writes) {
      const writeFile = handle.writeFile.bind(handle);
      handle.writeFile = async (...rest) => {
        await new Promise((resolve) => setTimeout(resolve, 50));
        return writeFile(...rest);
      };
    }
    return handle;
  };
  return { ...actual, open };
});

function rejection(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    if (error instanceof KeyRingError) {
      return error;
    }
    throw error;
  }
  throw new Error("expected a KeyRingError");
}

async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof KeyRingError) {
      return error;
    }
    throw error;
  }
  throw new Error("expected a KeyRingError");
}

describe("parseMasterKeys", () => {
  const a = generateKey();
  const b = generateKey();

  it("makes the first listed key the active one", () => {
    const ring = parseMasterKeys(`new:${b.toString("base64")},old:${a.toString("base64")}`);
    expect(ring.activeId).toBe("new");
    expect([...ring.keys.keys()]).toEqual(["new", "old"]);
    expect(ring.keys.get("new")?.equals(b)).toBe(true);
    expect(ring.keys.get("old")?.equals(a)).toBe(true);
  });

  it("tolerates whitespace and newlines, and URL-safe base64", () => {
    const ring = parseMasterKeys(
      `\n  k_1 : ${a.toString("base64")} ,\n\tk-2:${b.toString("base64url")}  \n`,
    );
    expect(ring.activeId).toBe("k_1");
    expect(ring.keys.get("k_1")?.equals(a)).toBe(true);
    expect(ring.keys.get("k-2")?.equals(b)).toBe(true);
  });

  it("names the setting and the rule for a key of the wrong length, without its bytes", () => {
    const short = randomBytes(16).toString("base64");
    const error = rejection(() => parseMasterKeys(`k1:${short}`));
    expect(error.message).toBe('COFFER_MASTER_KEYS: key "k1" must be 32 bytes of base64 (got 16)');
  });

  it.each([
    ["empty", "   ", "must list at least one key"],
    ["a bare key", a.toString("base64"), "entry 1 must have the form id:base64"],
    ["an empty entry", `k1:${a.toString("base64")},,`, "entry 2 is empty"],
    ["an invalid id", `bad id!:${a.toString("base64")}`, "entry 1 has an invalid key id"],
    ["an empty id", `:${a.toString("base64")}`, "entry 1 has an invalid key id"],
    ["id and key reversed", `${a.toString("base64")}:k1`, "entry 1 has an invalid key id"],
    ["an empty key", "k1:", 'key "k1" must be 32 bytes of base64 (got 0)'],
    ["non-base64", `k1:${a.toString("hex")}!`, 'key "k1" must be 32 bytes of base64 (not valid'],
    ["a long key", `k1:${randomBytes(48).toString("base64")}`, "(got 48)"],
    [
      "a duplicate id",
      `k1:${a.toString("base64")},k1:${b.toString("base64")}`,
      'key id "k1" is listed more than once',
    ],
  ])("refuses %s, naming the setting and never the key", (_, value, rule) => {
    const error = rejection(() => parseMasterKeys(value));
    expect(error.message).toMatch(/^COFFER_MASTER_KEYS: /);
    expect(error.message).toContain(rule);
    for (const key of [a, b]) {
      for (const encoding of ["base64", "base64url", "hex"] as const) {
        expect(error.message).not.toContain(key.toString(encoding));
      }
    }
  });
});

describe("key files", () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "coffer-key-ring-"));
  });

  afterEach(() => {
    slow.writes = false;
    rmSync(dir, { recursive: true, force: true });
  });

  it("creates a 0600 file in a new 0700 directory, and loads the same key back", async () => {
    const path = join(dir, "nested", "keys.json");
    const created = await createKeyFile(path);

    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "nested")).mode & 0o777).toBe(0o700);
    expect(created.activeId).toMatch(/^k-\d{8}-[0-9a-f]{4}$/);
    expect(created.keys.get(created.activeId)?.length).toBe(32);
    // No temporary file is left behind.
    expect(readdirSync(join(dir, "nested"))).toEqual(["keys.json"]);

    const loaded = await loadKeyFile(path);
    expect(loaded.activeId).toBe(created.activeId);
    expect(
      loaded.keys
        .get(loaded.activeId)
        ?.equals(created.keys.get(created.activeId) ?? Buffer.alloc(0)),
    ).toBe(true);
  });

  it("loads rather than overwrites an existing file", async () => {
    const path = join(dir, "keys.json");
    const first = await createKeyFile(path);
    const second = await createKeyFile(path);
    expect(second.activeId).toBe(first.activeId);
    expect(
      second.keys.get(second.activeId)?.equals(first.keys.get(first.activeId) ?? Buffer.alloc(0)),
    ).toBe(true);
  });

  it("round-trips a multi-key ring through serializeKeyFile", async () => {
    const path = join(dir, "keys.json");
    const ring = {
      activeId: "k2",
      keys: new Map([
        ["k1", generateKey()],
        ["k2", generateKey()],
      ]),
    };
    writeFileSync(path, serializeKeyFile(ring), { mode: 0o600 });
    const loaded = await loadKeyFile(path);
    expect(loaded.activeId).toBe("k2");
    expect([...loaded.keys.keys()].sort()).toEqual(["k1", "k2"]);
    for (const [id, key] of ring.keys) {
      expect(loaded.keys.get(id)?.equals(key)).toBe(true);
    }
  });

  it.each([0o644, 0o640, 0o604, 0o620])("refuses a file with mode %o", async (mode) => {
    const path = join(dir, "keys.json");
    await createKeyFile(path);
    chmodSync(path, mode);
    const error = await rejectionOf(loadKeyFile(path));
    expect(error.message).toContain(path);
    expect(error.message).toContain("must not be accessible by group or others");
    expect(error.message).toContain(`mode ${mode.toString(8)}`);
    // loadOrCreate must not silently replace it either.
    await expect(loadOrCreateKeyFile(path)).rejects.toThrowError(KeyRingError);
  });

  it.each([
    ["not JSON", (key: string) => `{"active": "k1", "keys": {"k1": "${key}"`, "is not valid JSON"],
    ["an array", () => "[]", "must be a JSON object"],
    ["missing keys", () => '{"active": "k1"}', "must be a JSON object"],
    [
      "a missing active key",
      (key: string) => `{"active":"k9","keys":{"k1":"${key}"}}`,
      'active key "k9" is not among its keys',
    ],
    [
      "a short key",
      () => `{"active":"k1","keys":{"k1":"${randomBytes(16).toString("base64")}"}}`,
      'key "k1" must be 32 bytes of base64 (got 16)',
    ],
    [
      "a non-string key",
      () => '{"active":"k1","keys":{"k1":42}}',
      'key "k1" must be a base64 string',
    ],
    [
      "an invalid id",
      (key: string) => `{"active":"k 1","keys":{"k 1":"${key}"}}`,
      "has an invalid key id",
    ],
  ])("refuses a file with %s, naming the path and never the key", async (_, content, rule) => {
    const path = join(dir, "keys.json");
    const key = generateKey().toString("base64");
    writeFileSync(path, content(key));
    chmodSync(path, 0o600);
    const error = await rejectionOf(loadKeyFile(path));
    expect(error.message).toContain(JSON.stringify(path));
    expect(error.message).toContain(rule);
    expect(error.message).not.toContain(key);
  });

  it("reports a missing file on load, and creates it on loadOrCreate", async () => {
    const path = join(dir, "keys.json");
    const error = await rejectionOf(loadKeyFile(path));
    expect(error.message).toBe(`key file ${JSON.stringify(path)} does not exist`);

    const created = await loadOrCreateKeyFile(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const again = await loadOrCreateKeyFile(path);
    expect(again.activeId).toBe(created.activeId);
  });

  it("gives every concurrent loadOrCreateKeyFile the same key", async () => {
    const path = join(dir, "sub", "keys.json");
    slow.writes = true;
    const rings = await Promise.all(Array.from({ length: 20 }, () => loadOrCreateKeyFile(path)));
    const first = rings[0];
    if (first === undefined) {
      throw new Error("no rings");
    }
    const key = first.keys.get(first.activeId);
    expect(key?.length).toBe(32);
    for (const ring of rings) {
      expect(ring.activeId).toBe(first.activeId);
      expect(ring.keys.get(ring.activeId)?.equals(key ?? Buffer.alloc(0))).toBe(true);
    }
    const onDisk = await loadKeyFile(path);
    expect(onDisk.activeId).toBe(first.activeId);
    expect(readdirSync(join(dir, "sub"))).toEqual(["keys.json"]);
  });
});
