import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { open, seal, versionAad } from "./envelope.ts";
import {
  addKeyToFile,
  createKeyFile,
  generateKey,
  type KeyRing,
  KeyRingError,
  loadKeyFile,
} from "./key-ring.ts";
import { KeyRingHolder } from "./key-ring-holder.ts";

const ring = (activeId: string, entries: [string, Buffer][]): KeyRing => ({
  activeId,
  keys: new Map(entries),
});

describe("KeyRingHolder", () => {
  const a = generateKey();
  const b = generateKey();

  it("serves the ring it holds through an unbound get", () => {
    const first = ring("a", [["a", a]]);
    const holder = new KeyRingHolder(first);
    const { get } = holder;
    expect(get()).toBe(first);
    const second = ring("b", [
      ["b", b],
      ["a", a],
    ]);
    holder.set(second);
    expect(get()).toBe(second);
    expect(get().activeId).toBe("b");
  });

  it("refuses a ring without its active key", () => {
    expect(() => new KeyRingHolder(ring("x", [["a", a]]))).toThrow(/lacks its active key "x"/);
    const holder = new KeyRingHolder(ring("a", [["a", a]]));
    expect(() => holder.set(ring("x", [["a", a]]))).toThrow(/lacks its active key/);
    expect(holder.get().activeId).toBe("a");
  });

  it("refuses a ring that drops or changes a key rows may depend on", () => {
    const holder = new KeyRingHolder(ring("a", [["a", a]]));
    expect(() => holder.set(ring("b", [["b", b]]))).toThrow(/must keep master key "a"/);
    expect(() =>
      holder.set(
        ring("b", [
          ["b", b],
          ["a", generateKey()],
        ]),
      ),
    ).toThrow(/must keep master key "a" unchanged/);
    expect(holder.get().activeId).toBe("a");
  });
});

describe("addKeyToFile", () => {
  let dir: string;
  let file: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "coffer-keys-"));
    file = join(dir, "master-keys.json");
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("adds a fresh active key, keeps the old ones, and writes the file with mode 0600", async () => {
    const before = await createKeyFile(file);
    const sealed = seal(new TextEncoder().encode("payload"), versionAad("s", 1), before);

    const after = await addKeyToFile(file);

    expect(after.activeId).not.toBe(before.activeId);
    expect(after.activeId).toMatch(/^k-\d{8}-[0-9a-f]{4}$/);
    expect([...after.keys.keys()]).toEqual([after.activeId, before.activeId]);
    const loaded = await loadKeyFile(file);
    expect(loaded.activeId).toBe(after.activeId);
    expect([...loaded.keys.keys()].sort()).toEqual([...after.keys.keys()].sort());
    // The old key is kept byte for byte: what it wrapped still opens.
    expect(new TextDecoder().decode(open(sealed, versionAad("s", 1), loaded))).toBe("payload");
    if (process.platform !== "win32") {
      expect(statSync(file).mode & 0o777).toBe(0o600);
    }
    // No temporary or lock file is left behind.
    expect(readdirSync(dir)).toEqual(["master-keys.json"]);
  });

  it("accumulates keys over several rotations", async () => {
    await createKeyFile(file);
    await addKeyToFile(file);
    const third = await addKeyToFile(file);
    const loaded = await loadKeyFile(file);
    expect(loaded.keys.size).toBe(3);
    expect(loaded.activeId).toBe(third.activeId);
  });

  it("refuses while another writer holds the lock, and leaves the file alone", async () => {
    await createKeyFile(file);
    const text = readFileSync(file, "utf8");
    writeFileSync(`${file}.lock`, "");
    await expect(addKeyToFile(file)).rejects.toThrow(KeyRingError);
    await expect(addKeyToFile(file)).rejects.toThrow(/being changed by another process/);
    expect(readFileSync(file, "utf8")).toBe(text);
    rmSync(`${file}.lock`);
    // Serialised calls both land: neither key is lost.
    const results = await Promise.allSettled([addKeyToFile(file), addKeyToFile(file)]);
    const added = results.flatMap((r) => (r.status === "fulfilled" ? [r.value.activeId] : []));
    const loaded = await loadKeyFile(file);
    for (const id of added) expect(loaded.keys.has(id)).toBe(true);
    expect(loaded.keys.size).toBe(1 + added.length);
  });

  it("refuses a missing or unsafe key file and does not create one", async () => {
    await expect(addKeyToFile(file)).rejects.toThrow(/does not exist/);
    expect(readdirSync(dir)).toEqual([]);
    writeFileSync(file, '{"active":"a","keys":{}}', { mode: 0o644 });
    if (process.platform !== "win32") {
      await expect(addKeyToFile(file)).rejects.toThrow(/must not be accessible by group or others/);
    }
    expect(readdirSync(dir)).toEqual(["master-keys.json"]);
  });
});
