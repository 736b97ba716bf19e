import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ensureConsoleBuilt } from "../support/browser.ts";
import { REPO_ROOT } from "../support/server-process.ts";

/**
 * The console's JavaScript, gzipped, stays within the budget that
 * bench/console-bundle.ts states (and bench/RESULTS.md reports, through
 * bench/console.ts): it measures the built dist/ and exits 1 over budget.
 */
describe("the console's bundle budget", () => {
  it("keeps the console's JavaScript, gzipped, within its budget", async () => {
    await ensureConsoleBuilt();
    const run = spawnSync(
      process.execPath,
      ["--import", "tsx", path.join(REPO_ROOT, "bench/console-bundle.ts")],
      { cwd: REPO_ROOT, encoding: "utf8" },
    );
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toMatch(/console JavaScript, gzipped: total/);
  });
});
