// `npm run build` in a package: compiles src/ to dist/ (JavaScript, type
// declarations and source maps, by the package's tsconfig.build.json), after
// emptying dist/ so that a deleted source leaves no stale module to be
// packed; writes dist/build-info.json (the commit it was built from, for
// `--version` and the coffer_build_info metric); then copies the files named
// as arguments (paths under src/, files or folders) that the compiled code
// reads beside itself at run time.
//   node ../../scripts/build-package.mjs src/db/migrations src/db/pglite-initdb.mjs
import { spawnSync } from "node:child_process";
import { cpSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { writeBuildInfo } from "./write-build-info.mjs";

const dist = path.resolve("dist");
rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const compiled = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], {
  stdio: "inherit",
});
if (compiled.status !== 0) process.exit(compiled.status ?? 1);
writeBuildInfo(dist);
for (const asset of process.argv.slice(2)) {
  if (!asset.startsWith("src/")) throw new Error(`${asset}: an asset is a path under src/`);
  cpSync(path.resolve(asset), path.join(dist, asset.slice("src/".length)), { recursive: true });
}
