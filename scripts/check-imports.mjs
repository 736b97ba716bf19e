// Checks how the files under packages/, test/, bench/ and scripts/ reach the
// workspace packages, and fails naming each file and line that:
// - imports a file of another package by relative path
//   ("../../server/src/x.ts"), which skips the package's declared entry
//   points (its package.json "exports") and its place in the dependency graph,
//   so layers can be crossed unseen;
// - imports a workspace package (`@coffer/...`) that its own package.json
//   does not list, which works only because npm links every workspace at the
//   root, and hides the arrow from turbo (which refuses cycles) and npm.
// Run by `npm run lint` and so by .ci/run.

import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const scanned = ["packages", "test", "bench", "scripts"];
const sourceFile = /\.(?:[cm]?[jt]s|tsx)$/;

const readJson = (file) => JSON.parse(readFileSync(path.join(root, file), "utf8"));

/** Every workspace package's folder (relative to the root), from the root package.json. */
function workspaceFolders() {
  return readJson("package.json").workspaces.flatMap((glob) => {
    if (!glob.endsWith("/*")) return [glob];
    const parent = glob.slice(0, -2);
    return readdirSync(path.join(root, parent), { withFileTypes: true })
      .filter(
        (e) =>
          e.isDirectory() &&
          statSync(path.join(root, parent, e.name, "package.json"), { throwIfNoEntry: false }),
      )
      .map((e) => `${parent}/${e.name}`);
  });
}

/** The workspace folder holding `file` (relative to the root), or undefined. */
function ownerOf(folders, file) {
  return folders.find((f) => file === f || file.startsWith(`${f}/`));
}

/** The package names a package.json lists in any of its dependency fields. */
function declared(manifest) {
  const fields = ["dependencies", "devDependencies", "peerDependencies", "optionalDependencies"];
  return new Set(fields.flatMap((f) => Object.keys(manifest[f] ?? {})));
}

function* sourceFiles(dir) {
  for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
    // dist/ is compiled from src/, which is read.
    if (entry.name === "node_modules" || entry.name === "dist" || entry.name.startsWith("."))
      continue;
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) yield* sourceFiles(rel);
    else if (sourceFile.test(entry.name)) yield rel;
  }
}

// The string of `from "x"`, `import "x"`, `import("x")`, `require("x")`,
// `import.meta.resolve("x")` and vitest's `vi.mock("x")` and kin.
const specifier =
  /(?:\bfrom|\bimport|\brequire|\bimport\.meta\.resolve|\bvi\.(?:mock|doMock|unmock|doUnmock|importActual|importMock))\s*\(?\s*(["'`])([^"'`\n]+)\1/g;

const folders = workspaceFolders();
const manifests = new Map(folders.map((f) => [f, readJson(`${f}/package.json`)]));
const workspaceNames = new Map([...manifests].map(([f, m]) => [m.name, f]));
const rootDeclared = declared(readJson("package.json"));

const violations = [];
let files = 0;
for (const dir of scanned) {
  if (!statSync(path.join(root, dir), { throwIfNoEntry: false })?.isDirectory()) continue;
  for (const file of sourceFiles(dir)) {
    files++;
    const text = readFileSync(path.join(root, file), "utf8");
    const owner = ownerOf(folders, file);
    const manifestFile = owner === undefined ? "package.json" : `${owner}/package.json`;
    const mine = owner === undefined ? rootDeclared : declared(manifests.get(owner));
    for (const match of text.matchAll(specifier)) {
      const spec = match[2];
      const at = () => `${file}:${text.slice(0, match.index).split("\n").length}`;
      if (spec.startsWith("./") || spec.startsWith("../")) {
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
        const targetOwner = ownerOf(folders, target);
        if (targetOwner !== undefined && targetOwner !== owner) {
          const name = manifests.get(targetOwner).name;
          violations.push(
            `${at()}: imports "${spec}", a file of ${targetOwner}, by relative path: import ` +
              `${name} (or an entry of its "exports") instead` +
              (mine.has(name) ? "" : `, and list it in ${manifestFile}`),
          );
        }
        continue;
      }
      const name = spec
        .split("/")
        .slice(0, spec.startsWith("@") ? 2 : 1)
        .join("/");
      const target = workspaceNames.get(name);
      if (target !== undefined && target !== owner && !mine.has(name)) {
        violations.push(
          `${at()}: imports "${spec}", but ${manifestFile} does not list ${name} ` +
            `(add it to dependencies, or devDependencies for tests)`,
        );
      }
    }
  }
}

if (violations.length > 0) {
  for (const v of violations) console.error(v);
  console.error(`\ncheck-imports: ${violations.length} import(s) across packages to fix`);
  process.exit(1);
}
console.log(
  `check-imports: ${files} files; every import of another package is by name and declared`,
);
