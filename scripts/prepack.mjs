// A publishable package's "prepack" (run by `npm pack` and `npm publish` in
// the package's folder): builds the package and what it depends on (turbo:
// a cached no-op when dist/ is current), so a tarball never holds a stale or
// missing dist/; then copies in the files that live once at the repository's
// root but must travel in every tarball: LICENSE, and the folders named as
// arguments (the API's proto/, so that other languages generate from the
// package). The copies are build output, ignored by git (.gitignore), and
// replaced whole on each pack so that a deleted file does not linger.
//   node ../../scripts/prepack.mjs proto
import { spawnSync } from "node:child_process";
import { cpSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { name } = JSON.parse(readFileSync("package.json", "utf8"));

const turbo = createRequire(import.meta.url).resolve("turbo/bin/turbo");
const built = spawnSync(
  process.execPath,
  [turbo, "run", "build", `--filter=${name}`, "--output-logs=errors-only"],
  { cwd: root, stdio: ["ignore", "ignore", "inherit"] },
);
if (built.status !== 0) {
  console.error(`prepack ${name}: the build failed (npx turbo run build --filter=${name})`);
  process.exit(built.status ?? 1);
}

cpSync(path.join(root, "LICENSE"), "LICENSE");
for (const folder of process.argv.slice(2)) {
  rmSync(folder, { recursive: true, force: true });
  cpSync(path.join(root, folder), folder, { recursive: true });
}
