import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { access, readdir } from "node:fs/promises";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { REPO_ROOT, runUntilExit } from "../support/server-process.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * A wrong setting stops the server at start, with a message that names the
 * setting, before it opens a database or writes anything.
 */

// Generous for a cold tsx start on a busy two-core machine; a server that
// fails to notice a bad setting would instead serve until killed.
const EXIT_WITHIN_MS = 30_000;

// Never reached: the settings are refused before any connection is made.
const UNREACHABLE_POSTGRES = "postgres://coffer@127.0.0.1:1/coffer";

describe("configuration errors", () => {
  let tempDir: string | undefined;
  /** A data folder that does not exist yet, so that a test can tell whether it was created. */
  let dataDir = "";

  beforeEach(async () => {
    tempDir = await makeTempDir("config");
    dataDir = path.join(tempDir, "data");
  });

  afterEach(async () => {
    await removeTempDir(tempDir);
  });

  const exists = (p: string) =>
    access(p).then(
      () => true,
      () => false,
    );

  it("names every bad setting at once and exits non-zero without touching the disk", async () => {
    const run = await runUntilExit(
      {
        env: {
          COFFER_DATA_DIR: dataDir,
          COFFER_GRPC_LISTEN: "nope",
          COFFER_DELETION_WINDOW: "7x",
        },
      },
      EXIT_WITHIN_MS,
    );
    expect(run.exit.signal).toBeNull();
    expect(run.exit.code).not.toBe(0);
    expect(run.served).toBe(false);
    expect(run.stderr).toMatch(/COFFER_GRPC_LISTEN: .*host:port/);
    expect(run.stderr).toMatch(/COFFER_DELETION_WINDOW: .*duration/);
    // No stack trace for a configuration mistake.
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(await exists(dataDir)).toBe(false);
  });

  it("asks for COFFER_MASTER_KEYS when Postgres is configured without a master key", async () => {
    const run = await runUntilExit(
      { env: { COFFER_DATA_DIR: dataDir, COFFER_DATABASE_URL: UNREACHABLE_POSTGRES } },
      EXIT_WITHIN_MS,
    );
    expect(run.exit.signal).toBeNull();
    expect(run.exit.code).not.toBe(0);
    expect(run.served).toBe(false);
    expect(run.stderr).toContain("set COFFER_MASTER_KEYS");
    // A key made on one replica's disk would leave the others unable to decrypt.
    expect(await exists(path.join(dataDir, "master-keys.json"))).toBe(false);
  });

  it("requires {region} in COFFER_DATABASE_URL when there are several regions", async () => {
    const run = await runUntilExit(
      {
        env: {
          COFFER_DATA_DIR: dataDir,
          COFFER_REGIONS: "fr-par,nl-ams",
          COFFER_DATABASE_URL: UNREACHABLE_POSTGRES,
          COFFER_MASTER_KEYS: `k1:${randomBytes(32).toString("base64")}`,
        },
      },
      EXIT_WITHIN_MS,
    );
    expect(run.exit.signal).toBeNull();
    expect(run.exit.code).not.toBe(0);
    expect(run.served).toBe(false);
    expect(run.stderr).toMatch(/COFFER_DATABASE_URL: .*\{region\}/);
  });

  it("refuses a malformed master key without printing it", async () => {
    // 31 bytes: one short of an AES-256 key.
    const almostKey = randomBytes(31).toString("base64");
    const run = await runUntilExit(
      { env: { COFFER_DATA_DIR: dataDir, COFFER_MASTER_KEYS: `k1:${almostKey}` } },
      EXIT_WITHIN_MS,
    );
    expect(run.exit.signal).toBeNull();
    expect(run.exit.code).not.toBe(0);
    expect(run.served).toBe(false);
    expect(run.stderr).toContain("COFFER_MASTER_KEYS");
    expect(run.stderr).toContain("32 bytes");
    expect(run.stdout + run.stderr).not.toContain(almostKey);
    expect((await exists(dataDir)) ? await readdir(dataDir) : []).not.toContain("master-keys.json");
  });
});

/**
 * `coffer-server`'s own arguments, on the built command (what `npm start`
 * and an installed package run): --version and --help answer without
 * serving; anything else is refused before a database is opened.
 */
describe("the coffer-server command line", () => {
  const bin = path.join(REPO_ROOT, "packages/server/bin/coffer-server.js");
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [bin, ...args], {
      encoding: "utf8",
      timeout: EXIT_WITHIN_MS,
      env: { PATH: process.env.PATH ?? "" },
    });

  it("prints the version and the commit of its build", () => {
    const r = run("--version");
    expect(r.status).toBe(0);
    const { version } = JSON.parse(
      readFileSync(path.join(REPO_ROOT, "packages/server/package.json"), "utf8"),
    ) as { version: string };
    expect(r.stdout).toMatch(
      new RegExp(`^coffer-server ${version.replaceAll(".", "\\.")} \\(commit \\S+, node v`),
    );
    expect(r.stdout).not.toContain("commit source");
  });

  it("prints its usage for --help, and refuses an unknown argument with exit code 2", () => {
    const help = run("--help");
    expect(help.status).toBe(0);
    expect(help.stdout).toContain("Usage: coffer-server");
    const bad = run("--serve-forever");
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('unknown argument "--serve-forever"');
    expect(bad.stdout).not.toContain("coffer is serving");
  });
});
