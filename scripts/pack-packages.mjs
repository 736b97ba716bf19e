// `node scripts/pack-packages.mjs <folder>`: `npm pack`s every publishable
// workspace package (those not "private") into <folder>, each package's
// prepack building it first (scripts/prepack.mjs), then checks what each
// tarball holds and says, and fails naming every breach:
// - only what its `files` names (and package.json), each entry present;
//   never sources, tests, test helpers or build state (src/, *.test.*,
//   testing/, fakes, .tsbuildinfo);
// - README.md, LICENSE, dist/build-info.json, the file of every `exports`
//   condition a consumer resolves (the workspace's own @coffer/source
//   condition aside) and of every bin;
// - compiled modules that import only the package's dependencies;
// - one version for all, every dependency on another @coffer package pinned
//   to exactly that version (an installed set is always consistent), the
//   license, engines.node.
// Prints each tarball's size and writes <folder>/manifest.json, the list the
// release test (test/release) installs from. Used by scripts/release.mjs.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { isBuiltin } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const LICENSE = "Apache-2.0";
const DEPENDENCY_FIELDS = [
  "dependencies",
  "devDependencies",
  "peerDependencies",
  "optionalDependencies",
];
/** Where a dependency a shipped module may import is listed (not devDependencies). */
const RUNTIME_FIELDS = ["dependencies", "peerDependencies", "optionalDependencies"];
/** What no tarball may hold, wherever it sits. */
const FORBIDDEN = [
  [/(^|\/)src\//, "a source folder (src/)"],
  [/\.(test|spec)\.[cm]?[jt]sx?(\.map)?$|\.test\.d\.[cm]?ts(\.map)?$/, "a test"],
  [/(^|\/)testing(\/|\.)/, "a test helper (testing)"],
  [/(^|\/)(fake-coffer|test-server|test-io)\./, "a test fake"],
  [/\.tsbuildinfo$/, "TypeScript build state (.tsbuildinfo)"],
  [/(^|\/)(vitest\.config|tsconfig(\.build)?\.json|bundle\.mjs|drizzle\.config)/, "build config"],
];

/**
 * The string of `from "x"`, `import "x"`, `import("x")` and `require("x")`
 * in compiled JavaScript: a shipped module may import only the package's
 * dependencies (a test helper left in dist/ imports dev dependencies).
 */
const SPECIFIER = /(?:^|[;\s}])(?:from|import|require)\s*\(?\s*(["'])([\w@./:-]+)\1/gm;

/** Every workspace package: its folder (relative to the root) and package.json, in workspace order. */
export function workspacePackages() {
  const { workspaces } = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
  return workspaces
    .flatMap((glob) =>
      glob.endsWith("/*")
        ? readdirSync(path.join(root, glob.slice(0, -2))).map((d) => `${glob.slice(0, -2)}/${d}`)
        : [glob],
    )
    .filter((dir) => statSync(path.join(root, dir, "package.json"), { throwIfNoEntry: false }))
    .map((dir) => ({
      dir,
      manifest: JSON.parse(readFileSync(path.join(root, dir, "package.json"), "utf8")),
    }));
}

/** The publishable workspace packages (not "private"). */
export function publishablePackages() {
  return workspacePackages().filter(({ manifest }) => manifest.private !== true);
}

/** Every file an `exports` map sends a consumer to (not the workspace's own source condition). */
function exportTargets(exports) {
  if (typeof exports === "string") return [exports];
  if (exports === null || typeof exports !== "object") return [];
  return Object.entries(exports).flatMap(([key, value]) =>
    key === "@coffer/source" ? [] : exportTargets(value),
  );
}

/** The breaches of one packed package (its `npm pack --json` entry and package.json). */
function breaches(packed, dir, manifest, version) {
  const found = [];
  const files = packed.files.map((f) => f.path);
  const has = new Set(files);
  const listed = manifest.files ?? [];
  for (const file of files) {
    const under = (entry) => file === entry || file.startsWith(`${entry}/`);
    if (file !== "package.json" && !listed.some(under)) {
      found.push(`${file}: not under an entry of "files"`);
    }
    for (const [pattern, what] of FORBIDDEN) {
      if (pattern.test(file)) found.push(`${file}: ${what}`);
    }
  }
  for (const entry of listed) {
    if (!files.some((f) => f === entry || f.startsWith(`${entry}/`))) {
      found.push(`"files" names ${entry}, which is not in the tarball`);
    }
  }
  const required = [
    "README.md",
    "LICENSE",
    "dist/build-info.json",
    ...exportTargets(manifest.exports),
    ...Object.values(manifest.bin ?? {}),
  ];
  for (const file of required.map((f) => path.posix.normalize(f))) {
    if (!has.has(file)) found.push(`${file}: missing (named by package.json, or always shipped)`);
  }
  // The modules tsc compiled (declarations beside them) and the bins; a
  // bundle (the agent's single file) carries its dependencies inside.
  const modules = files.filter(
    (f) => (f.endsWith(".js") && has.has(f.replace(/\.js$/, ".d.ts"))) || f.startsWith("bin/"),
  );
  for (const file of modules) {
    const text = readFileSync(path.join(root, dir, file), "utf8");
    for (const match of text.matchAll(SPECIFIER)) {
      const spec = match[2];
      if (spec.startsWith(".") || isBuiltin(spec)) continue;
      const name = spec
        .split("/")
        .slice(0, spec.startsWith("@") ? 2 : 1)
        .join("/");
      if (name !== manifest.name && !RUNTIME_FIELDS.some((f) => manifest[f]?.[name])) {
        found.push(`${file} imports ${spec}, and ${name} is not among its dependencies`);
      }
    }
  }
  if (manifest.version !== version) {
    found.push(`version ${manifest.version}, where the other packages are ${version}`);
  }
  if (manifest.license !== LICENSE) found.push(`license ${manifest.license}, not ${LICENSE}`);
  if (!manifest.engines?.node) found.push("no engines.node");
  for (const field of DEPENDENCY_FIELDS) {
    for (const [name, range] of Object.entries(manifest[field] ?? {})) {
      if (name.startsWith("@coffer/") && range !== version) {
        found.push(`${field}.${name} is "${range}", not the shared version "${version}"`);
      }
    }
  }
  return found;
}

const kB = (bytes) => `${(bytes / 1000).toFixed(1)} kB`;

/**
 * Packs every publishable package into `destination` (its old tarballs
 * removed first) and checks them; returns the manifest written beside them.
 * @throws Error listing every breach.
 */
export function packPackages(destination) {
  const packages = publishablePackages();
  const version = packages[0]?.manifest.version;
  mkdirSync(destination, { recursive: true });
  for (const old of readdirSync(destination)) {
    if (old.endsWith(".tgz")) rmSync(path.join(destination, old));
  }
  // npm_* variables of an enclosing `npm run` (npm_config_dry_run, ...) would
  // be read as this npm's configuration.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  const npm = spawnSync(
    "npm",
    [
      "pack",
      "--json",
      "--pack-destination",
      path.resolve(destination),
      ...packages.flatMap(({ dir }) => ["--workspace", dir]),
    ],
    { cwd: root, env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 },
  );
  if (npm.status !== 0) {
    throw new Error(`npm pack failed (exit ${npm.status}):\n${npm.stderr}`);
  }
  const packed = JSON.parse(npm.stdout);
  const problems = [];
  const manifest = packages.map(({ dir, manifest: pkg }) => {
    const entry = packed.find((p) => p.name === pkg.name);
    if (entry === undefined) throw new Error(`npm pack did not pack ${pkg.name} (${dir})`);
    for (const breach of breaches(entry, dir, pkg, version))
      problems.push(`${pkg.name}: ${breach}`);
    return {
      name: pkg.name,
      version: pkg.version,
      file: entry.filename,
      size: entry.size,
      unpackedSize: entry.unpackedSize,
      entryCount: entry.entryCount,
    };
  });
  const width = Math.max(...manifest.map((m) => m.name.length));
  console.log(`${"package".padEnd(width)}  files     packed   unpacked`);
  for (const m of manifest) {
    console.log(
      `${m.name.padEnd(width)}  ${String(m.entryCount).padStart(5)}  ${kB(m.size).padStart(9)}  ${kB(m.unpackedSize).padStart(9)}`,
    );
  }
  if (problems.length > 0) {
    throw new Error(`the tarballs break the packing rules:\n  ${problems.join("\n  ")}`);
  }
  writeFileSync(
    path.join(destination, "manifest.json"),
    `${JSON.stringify({ version, packages: manifest }, null, 2)}\n`,
  );
  return { version, packages: manifest };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const destination = process.argv[2];
  if (destination === undefined) {
    console.error("usage: node scripts/pack-packages.mjs <folder>");
    process.exit(2);
  }
  try {
    packPackages(destination);
  } catch (err) {
    console.error(`pack-packages: ${err.message}`);
    process.exit(1);
  }
}
