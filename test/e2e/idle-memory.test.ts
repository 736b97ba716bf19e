import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { REPO_ROOT, serverEnv } from "../support/server-process.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * The server as `npm start` runs it (packages/server/bin/coffer-server.js:
 * the sources bundled, on plain Node) serves, and its idle memory stays
 * within the README's bounds: under 250 MB on the embedded database, first
 * start included (it was 912 MB), and under 150 MB on Postgres (190 MB).
 * bench/idle-rss.ts measures the same in more detail.
 */
const BIN = path.join(REPO_ROOT, "packages/server/bin/coffer-server.js");
const MiB = 1024 * 1024;

/** Starts the server by its bin, waits until it serves and idles, returns its VmRSS. */
async function idleRss(env: Record<string, string | undefined>): Promise<number> {
  const child = spawn(process.execPath, [BIN], {
    cwd: REPO_ROOT,
    env: serverEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (c: Buffer) => {
    output += c.toString();
  });
  child.stderr.on("data", (c: Buffer) => {
    output += c.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  try {
    const deadline = Date.now() + 120_000;
    while (!output.includes("coffer is serving")) {
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`the server did not start:\n${output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
  } finally {
    child.kill("SIGTERM");
    await exited;
  }
}

describe("idle memory, started as npm start does", () => {
  let dataDir: string | undefined;
  afterAll(() => removeTempDir(dataDir));

  it("embedded: under 250 MB after a first start and after a restart", {
    timeout: 300_000,
  }, async () => {
    dataDir = await makeTempDir("idle-memory");
    const first = await idleRss({ COFFER_DATA_DIR: dataDir });
    const restart = await idleRss({ COFFER_DATA_DIR: dataDir });
    expect(first / MiB).toBeLessThan(250);
    expect(restart / MiB).toBeLessThan(250);
  });

  const url = process.env.TEST_DATABASE_URL;
  it.runIf(url !== undefined)("Postgres: under 150 MB", { timeout: 300_000 }, async () => {
    const admin = postgres(url ?? "", { max: 1, onnotice: () => {} });
    const name = `coffer_idle_${randomBytes(4).toString("hex")}`;
    await admin.unsafe(`create database ${name}`);
    try {
      const target = new URL(url ?? "");
      target.pathname = `/${name}`;
      const rss = await idleRss({
        COFFER_DATABASE_URL: target.toString(),
        COFFER_MASTER_KEYS: `k1:${randomBytes(32).toString("base64")}`,
      });
      expect(rss / MiB).toBeLessThan(150);
    } finally {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    }
  });
});
