// The release procedure (RELEASING.md), as one command:
//
//   node scripts/release.mjs <version>           (npm run release -- <version>)
//   node scripts/release.mjs <version> --check   everything but writing the version
//
// 1. checks the version (semver, not tagged yet) and, unless --check, that
//    the working tree is clean;
// 2. checks that CHANGELOG.md has a dated section for it, with entries;
// 3. writes it (not with --check) as the version of every publishable
//    package and as every pin of one @coffer package on another, in every
//    workspace, then refreshes package-lock.json (npm install);
// 4. lints (npm run lint) and builds every package (turbo);
// 5. packs every publishable package into .release/ and checks the tarballs
//    (scripts/pack-packages.mjs);
// 6. runs the release test against those tarballs (test/release/run.ts).
// It never commits, tags or publishes: it prints those commands, for a
// person to run once the diff is reviewed. With --check, the packages are
// packed at the version they have, so a pull request can run the whole
// procedure without changing anything.
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { packPackages, publishablePackages, workspacePackages } from "./pack-packages.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const RELEASE_DIR = ".release";
const DEPENDENCY_FIELDS = [
  "dependencies",
  "devDependencies",
  "peerDependencies",
  "optionalDependencies",
];
const SEMVER = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;

const args = process.argv.slice(2);
const check = args.includes("--check") || args.includes("--dry-run");
const version = args.find((a) => !a.startsWith("--"));

function fail(message) {
  console.error(`release: ${message}`);
  process.exit(1);
}

// npm_* variables of an enclosing `npm run` would configure the npm we run.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));

function sh(command, commandArgs, what) {
  console.log(`\n== ${what}: ${[command, ...commandArgs].join(" ")}`);
  const result = spawnSync(command, commandArgs, { cwd: root, env, stdio: "inherit" });
  if (result.status !== 0) fail(`${what} failed (exit ${result.status ?? result.signal})`);
}

/**
 * The publishable packages' names, each after the @coffer packages it
 * depends on at run time, so that no published package names one that is
 * not published yet.
 */
function dependenciesFirst(packages) {
  const byName = new Map(packages.map((p) => [p.manifest.name, p.manifest]));
  const ordered = [];
  const seen = new Set(); // a cycle (turbo refuses one) must not recurse for ever
  const visit = (name) => {
    if (seen.has(name) || !byName.has(name)) return;
    seen.add(name);
    const manifest = byName.get(name);
    for (const field of ["dependencies", "peerDependencies", "optionalDependencies"]) {
      for (const dep of Object.keys(manifest[field] ?? {})) visit(dep);
    }
    ordered.push(name);
  };
  for (const name of byName.keys()) visit(name);
  return ordered;
}

function git(...gitArgs) {
  const result = spawnSync("git", gitArgs, { cwd: root, encoding: "utf8" });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

if (version === undefined || !SEMVER.test(version)) {
  fail("usage: node scripts/release.mjs <version> [--check]   (version: x.y.z or x.y.z-pre.n)");
}

console.log(`== Release ${version}${check ? " (--check: the version is not written)" : ""}`);
if (git("rev-parse", "-q", "--verify", `refs/tags/v${version}`) !== undefined) {
  fail(`the tag v${version} exists already`);
}
const dirty = git("status", "--porcelain");
if (dirty === undefined) fail("not a git checkout");
if (dirty !== "" && !check) fail(`the working tree has changes: commit or stash them\n${dirty}`);

// The CHANGELOG says what the release holds before anything is built.
const changelog = readFileSync(path.join(root, "CHANGELOG.md"), "utf8");
const heading = new RegExp(
  `^## \\[${version.replaceAll(".", "\\.")}\\] - \\d{4}-\\d{2}-\\d{2}$`,
  "m",
);
const at = changelog.search(heading);
if (at === -1) fail(`CHANGELOG.md has no section "## [${version}] - YYYY-MM-DD"`);
const section = changelog.slice(at).split(/^## /m)[1] ?? "";
if (!/^- /m.test(section)) fail(`CHANGELOG.md's section for ${version} lists no change`);
console.log(`CHANGELOG.md: section ${version} found`);

const packages = publishablePackages();
const names = new Set(packages.map((p) => p.manifest.name));
if (!check) {
  // Every workspace's manifest, so that test/ and bench/ follow a pin too.
  for (const { dir, manifest } of workspacePackages()) {
    const file = path.join(root, dir, "package.json");
    if (names.has(manifest.name)) manifest.version = version;
    for (const field of DEPENDENCY_FIELDS) {
      for (const [name, range] of Object.entries(manifest[field] ?? {})) {
        // "*" (the private test/ and bench/ workspaces) follows by itself.
        if (names.has(name) && range !== "*") manifest[field][name] = version;
      }
    }
    writeFileSync(file, `${JSON.stringify(manifest, null, 2)}\n`);
  }
  console.log(`version ${version} written to ${[...names].join(", ")} and their pins`);
  sh("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund"], "package-lock.json");
}

sh("npm", ["run", "lint"], "Lint");
sh("npx", ["turbo", "run", "build", "--output-logs=errors-only"], "Build");

console.log(`\n== Pack into ${RELEASE_DIR}/`);
rmSync(path.join(root, RELEASE_DIR), { recursive: true, force: true });
let packed;
try {
  packed = packPackages(path.join(root, RELEASE_DIR));
} catch (err) {
  fail(err.message);
}
if (packed.version !== version && !check) fail(`packed ${packed.version}, not ${version}`);

sh(
  process.execPath,
  ["--import", "tsx", "test/release/run.ts", "--tarballs", RELEASE_DIR],
  "Release test",
);

const tarballs = packed.packages.map((p) => `${RELEASE_DIR}/${p.file}`);
console.log(`\n== ${check ? "Checked" : "Ready"}: ${tarballs.join(" ")}`);
if (!check) {
  const ordered = dependenciesFirst(packages).map((name) =>
    packed.packages.find((p) => p.name === name),
  );
  console.log(`Review the diff, then:
  git commit -am "Release ${version}" && git tag -a v${version} -m "Coffer ${version}"
  git push && git push origin v${version}
${ordered.map((p) => `  npm publish ${RELEASE_DIR}/${p.file}`).join("\n")}`);
}
