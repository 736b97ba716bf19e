// Writes dist/build-info.json in the current package: the commit it was
// built from, for `--version`, the coffer_build_info metric and the packing
// check (scripts/pack-packages.mjs wants it in every tarball). COFFER_COMMIT
// names the commit where the build has no git checkout (a source tarball, a
// container build context without .git). Run by scripts/build-package.mjs,
// and after `vite build` by the console.
//   node ../../scripts/write-build-info.mjs
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** Writes `<dist>/build-info.json`. */
export function writeBuildInfo(dist) {
  const git = spawnSync("git", ["rev-parse", "--short=12", "HEAD"], { encoding: "utf8" });
  const commit = process.env.COFFER_COMMIT || (git.status === 0 ? git.stdout.trim() : "unknown");
  mkdirSync(dist, { recursive: true });
  writeFileSync(path.join(dist, "build-info.json"), `${JSON.stringify({ commit })}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) writeBuildInfo(path.resolve("dist"));
