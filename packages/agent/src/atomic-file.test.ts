import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { fileMatches, removeFile, removeStaleTemporaries, writeFileAtomic } from "./atomic-file.ts";

/** Only root may give a file to another owner. */
const asRoot = {
  skip: process.getuid?.() !== 0,
  meta: { skipReason: "needs root (chown to another user)" } as Record<string, unknown>,
};

let dir = "";
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "coffer-agent-atomic-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * A reader in another process, reading `file` in a tight loop until `stop`
 * exists: counts reads, and reads that were not a whole version (each
 * version starts with its own length).
 */
const READER = `
const fs = require("node:fs");
const [file, stop] = process.argv.slice(1);
let reads = 0, bad = 0, missing = 0;
while (!fs.existsSync(stop)) {
  try {
    const s = fs.readFileSync(file, "utf8");
    reads++;
    const m = /^(\\d+)\\|/.exec(s);
    if (!m || s.length !== Number(m[1])) bad++;
  } catch (e) {
    if (e.code === "ENOENT") missing++; else bad++;
  }
}
process.stdout.write(JSON.stringify({ reads, bad, missing }));
`;

function version(i: number): Buffer {
  // Sizes from a few bytes to 64 KiB (the largest payload), so that a torn write would show.
  const filler = String.fromCharCode(97 + (i % 26)).repeat((i * 7919) % 65_536);
  const body = `|${i}:${filler}`;
  let length = body.length + 1;
  while (`${length}${body}`.length !== length) length += 1;
  return Buffer.from(`${length}${body}`);
}

describe("writeFileAtomic", () => {
  it("never lets a concurrent reader see a partial, empty or missing file", async () => {
    const file = path.join(dir, "secret");
    const stop = path.join(dir, "stop");
    await writeFileAtomic(file, version(0), { mode: 0o400 });
    const reader = spawn(process.execPath, ["-e", READER, file, stop], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    reader.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    const exited = new Promise((resolve) => reader.once("close", resolve));
    for (let i = 1; i <= 100; i++) await writeFileAtomic(file, version(i), { mode: 0o400 });
    await writeFile(stop, "");
    await exited;
    const result = JSON.parse(out) as { reads: number; bad: number; missing: number };
    expect(result.reads).toBeGreaterThan(20);
    expect(result).toMatchObject({ bad: 0, missing: 0 });
    expect((await readFile(file)).equals(version(100))).toBe(true);
    // No temporary file is left behind.
    expect((await readdir(dir)).sort()).toEqual(["secret", "stop"]);
  });

  it("applies the mode exactly, whatever the umask, and creates missing folders", async () => {
    const file = path.join(dir, "a/b/secret");
    const old = process.umask(0o077);
    try {
      await writeFileAtomic(file, Buffer.from("x"), { mode: 0o644 });
    } finally {
      process.umask(old);
    }
    expect((await stat(file)).mode & 0o7777).toBe(0o644);
    expect(await fileMatches(file, { mode: 0o644 })).toBe(true);
    expect(await fileMatches(file, { mode: 0o400 })).toBe(false);
    expect(await fileMatches(path.join(dir, "none"), { mode: 0o400 })).toBe(false);
  });

  it("sets the owner and group when asked (as root)", asRoot, async () => {
    const file = path.join(dir, "owned");
    await writeFileAtomic(file, Buffer.from("x"), { mode: 0o440, uid: 4321, gid: 8765 });
    const info = await stat(file);
    expect([info.uid, info.gid, info.mode & 0o7777]).toEqual([4321, 8765, 0o440]);
    expect(await fileMatches(file, { mode: 0o440, uid: 4321, gid: 8765 })).toBe(true);
    expect(await fileMatches(file, { mode: 0o440, uid: 0 })).toBe(false);
  });

  it("leaves no temporary file when a write fails", async () => {
    const file = path.join(dir, "secret");
    await writeFileAtomic(file, Buffer.from("old"), { mode: 0o600 });
    // A folder where the file would go: the rename fails.
    await mkdir(path.join(dir, "sub/inner"), { recursive: true });
    await expect(
      writeFileAtomic(path.join(dir, "sub"), Buffer.from("x"), { mode: 0o600 }),
    ).rejects.toThrow();
    expect((await readdir(dir)).sort()).toEqual(["secret", "sub"]);
    expect(await readFile(file, "utf8")).toBe("old");
  });
});

describe("removeFile and removeStaleTemporaries", () => {
  it("removes a file, and says whether there was one", async () => {
    const file = path.join(dir, "secret");
    await writeFile(file, "x");
    expect(await removeFile(file)).toBe(true);
    expect(await removeFile(file)).toBe(false);
    expect(await readdir(dir)).toEqual([]);
  });

  it("removes only the temporary files a crashed write of that file left", async () => {
    const file = path.join(dir, "secret");
    await writeFile(path.join(dir, ".secret.coffer-tmp-0123456789ab"), "partial");
    await writeFile(path.join(dir, ".other.coffer-tmp-0123456789ab"), "partial");
    await writeFile(path.join(dir, ".secret.coffer-tmp-notours"), "keep");
    expect(await removeStaleTemporaries(file)).toBe(1);
    expect((await readdir(dir)).sort()).toEqual([
      ".other.coffer-tmp-0123456789ab",
      ".secret.coffer-tmp-notours",
    ]);
    expect(await removeStaleTemporaries(path.join(dir, "missing/secret"))).toBe(0);
  });
});
