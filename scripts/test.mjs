// `npm test`: runs every workspace's tests, one package at a time, carrying
// on past a failing package (turbo --continue), then prints one summary of
// all of them (scripts/test-summary.mjs). Exits non-zero when turbo or the
// summary saw a failure. Extra arguments go to turbo (`npm test -- --filter=@coffer/cli`).
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { reportFiles, summarize } from "./test-summary.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
// A report left by an earlier run must not stand in for one that did not run.
for (const file of reportFiles()) rmSync(path.join(root, file), { force: true });

const turbo = spawnSync(
  "npx",
  ["turbo", "run", "test", "--concurrency=1", "--continue", ...process.argv.slice(2)],
  { cwd: root, stdio: "inherit" },
);
const filtered = process.argv.slice(2).some((a) => a.startsWith("--filter"));
// With --filter, only some reports exist: the summary then covers those.
const passed = filtered ? true : summarize();
if (turbo.status !== 0 || !passed) {
  console.error(
    turbo.status !== 0
      ? `npm test: failed (turbo exited ${turbo.status ?? turbo.signal})`
      : "npm test: failed",
  );
  process.exit(1);
}
