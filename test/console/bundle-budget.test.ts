import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ensureConsoleBuilt } from "../support/browser.ts";
import { REPO_ROOT } from "../support/server-process.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * The console's JavaScript, gzipped, stays within the budget that
 * bench/console-bundle.ts states (and bench/RESULTS.md reports, through
 * bench/console.ts): it measures the built dist/ and exits 1 over budget.
 */

function checkBudget(env: Record<string, string> = {}) {
  return spawnSync(
    process.execPath,
    ["--import", "tsx", path.join(REPO_ROOT, "bench/console-bundle.ts")],
    { cwd: REPO_ROOT, encoding: "utf8", env: { ...process.env, ...env } },
  );
}

describe("the console's bundle budget", () => {
  it("keeps the console's JavaScript, gzipped, within its budget", async () => {
    await ensureConsoleBuilt();
    const run = checkBudget();
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toMatch(/console JavaScript, gzipped: total/);
  });

  it("fails a build whose largest chunk is over the budget", async () => {
    const dist = await makeTempDir("console-dist");
    try {
      await mkdir(path.join(dist, "assets"));
      // Random text barely compresses: 400 KiB of it is over any chunk budget here.
      const big = randomBytes(300 * 1024).toString("base64");
      await writeFile(path.join(dist, "assets", "index-0123456789.js"), `export const x="${big}";`);
      // Only what the page loads counts: index.html names the entry.
      await writeFile(
        path.join(dist, "index.html"),
        `<script type="module" src="/assets/index-0123456789.js"></script>`,
      );
      const run = checkBudget({ COFFER_CONSOLE_DIST: dist });
      expect(run.status).toBe(1);
      expect(run.stderr).toMatch(/over budget[\s\S]*largest chunk \(index-0123456789\.js\)/);
    } finally {
      await removeTempDir(dist);
    }
  });
});
