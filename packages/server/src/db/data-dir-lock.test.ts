import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openDatabase } from "./client.ts";
import { DataDirLockedError, lockDataDir } from "./data-dir-lock.ts";

describe("the data folder lock", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "coffer-lock-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("refuses a second holder at once, naming the folder and the holder's pid", async () => {
    const folder = path.join(dir, "a");
    const lock = await lockDataDir(folder);
    expect(readFileSync(`${folder}.lock`, "utf8")).toBe(`${process.pid}\n`);
    const refused = await lockDataDir(folder).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DataDirLockedError);
    expect((refused as Error).message).toContain(
      `the embedded database folder ${folder} is in use by another process (pid ${process.pid}`,
    );
    await lock.release();
    // Released: taken again, and the pid is forgotten on release.
    expect(readFileSync(`${folder}.lock`, "utf8")).toBe("");
    await (await lockDataDir(folder)).release();
  });

  it("is held by an open PGlite folder until it closes; in memory, nothing is locked", {
    timeout: 180_000,
  }, async () => {
    const folder = path.join(dir, "b");
    const database = await openDatabase({ driver: "pglite", dataDir: folder });
    await expect(lockDataDir(folder)).rejects.toBeInstanceOf(DataDirLockedError);
    await database.close();
    await (await lockDataDir(folder)).release();

    // Two in-memory databases side by side: nothing shared, nothing locked.
    const one = await openDatabase({ driver: "pglite", dataDir: undefined });
    const two = await openDatabase({ driver: "pglite", dataDir: undefined });
    await Promise.all([one.close(), two.close()]);
    expect(existsSync(path.join(process.cwd(), "memory:.lock"))).toBe(false);
  });
});
