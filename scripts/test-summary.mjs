// Reads every workspace's vitest JSON report and prints, after all of them
// have run: each failed test (and each file that failed to load), each group
// of skipped tests with the reason it was skipped, then one closing line
// "N passed, N failed, N skipped". Exits non-zero when anything failed, when
// a report is missing (its package's run crashed or never started), or when
// no test ran, so that neither CI nor `npm test` can pass on an empty run.
//
// A skipped suite gives its reason in its metadata:
//   describe("...", { skip: !ready, meta: { skipReason: "needs X" } }, ...)
// (test/support/skip.ts and packages/server/src/testing/skip.ts do that);
// a skip without one is listed as "no reason given", so it cannot hide.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The workspaces with tests, each writing `.vitest-report.json` (its package.json "test" script). */
export const WORKSPACES = [
  "packages/server",
  "packages/client",
  "packages/agent",
  "packages/cli",
  "packages/console",
  "test",
];

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** The report files, relative to the repository root. */
export const reportFiles = () => WORKSPACES.map((p) => `${p}/.vitest-report.json`);

/** Prints the summary; returns true when everything that ran passed. */
export function summarize(log = console.log) {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const problems = [];
  /** reason -> Map(file -> count) */
  const skips = new Map();
  for (const workspace of WORKSPACES) {
    const file = path.join(root, workspace, ".vitest-report.json");
    if (!existsSync(file)) {
      problems.push(
        `${workspace}: no test report (${workspace}/.vitest-report.json): its tests did not run to the end`,
      );
      continue;
    }
    const r = JSON.parse(readFileSync(file, "utf8"));
    passed += r.numPassedTests;
    failed += r.numFailedTests;
    skipped += r.numPendingTests + r.numTodoTests;
    for (const result of r.testResults) {
      const where = path.relative(root, result.name);
      const failedHere = result.assertionResults.filter((t) => t.status === "failed");
      for (const t of failedHere) problems.push(`${where} > ${t.fullName}`);
      if (result.status === "failed" && failedHere.length === 0) {
        // A file that failed outside any test: an import error, a failed hook.
        problems.push(`${where}: ${(result.message || "failed outside its tests").split("\n")[0]}`);
        failed += 1;
      }
      for (const t of result.assertionResults) {
        if (t.status !== "skipped" && t.status !== "pending" && t.status !== "todo") continue;
        const reason = t.meta?.skipReason ?? (t.status === "todo" ? "todo" : "no reason given");
        const byFile = skips.get(reason) ?? new Map();
        byFile.set(where, (byFile.get(where) ?? 0) + 1);
        skips.set(reason, byFile);
      }
    }
  }
  if (skips.size > 0) {
    log("\nSkipped:");
    for (const [reason, byFile] of skips) {
      log(`  ${reason}:`);
      for (const [where, n] of byFile) log(`    ${where} (${n} test${n === 1 ? "" : "s"})`);
    }
  }
  if (problems.length > 0) {
    log("\nFailed:");
    for (const p of problems) log(`  ${p}`);
  }
  log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
  return problems.length === 0 && failed === 0 && passed > 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (!summarize()) process.exit(1);
}
