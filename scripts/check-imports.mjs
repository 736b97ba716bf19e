// Fails when a file under packages/, test/, bench/ or scripts/ imports a file
// of another workspace package by relative path ("../../server/src/x.ts"):
// such an import skips the package's declared entry points and its place in
// the dependency graph (turbo, npm), so layers can be crossed unseen. Import
// the package by name and a declared export instead (`@coffer/server/testing`),
// and list it as a (dev) dependency. Run by `npm run lint` and so by .ci/run.

import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const scanned = ["packages", "test", "bench", "scripts"];
const sourceFile = /\.(?:[cm]?[jt]s|tsx)$/;

/** Every workspace package's folder (relative to the root), from the root package.json. */
function workspaces() {
  const { workspaces: globs } = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
  return globs.flatMap((glob) => {
    if (!glob.endsWith("/*")) return [glob];
    const parent = glob.slice(0, -2);
    return readdirSync(path.join(root, parent), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => `${parent}/${e.name}`);
  });
}

/** The workspace folder holding `file` (relative to the root), or undefined. */
function ownerOf(folders, file) {
  return folders.find((f) => file === f || file.startsWith(`${f}/`));
}

function* sourceFiles(dir) {
  for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
    if (entry.name === "node_modules" || entry.name.startsWith(".")) continue;
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) yield* sourceFiles(rel);
    else if (sourceFile.test(entry.name)) yield rel;
  }
}

// The string of `from "x"`, `import "x"`, `import("x")`, `require("x")`,
// `import.meta.resolve("x")` and vitest's `vi.mock("x")` and kin.
const specifier =
  /(?:\bfrom|\bimport|\brequire|\bimport\.meta\.resolve|\bvi\.(?:mock|doMock|unmock|doUnmock|importActual|importMock))\s*\(?\s*(["'`])([^"'`\n]+)\1/g;

const folders = workspaces();
const violations = [];
let files = 0;
for (const dir of scanned) {
  if (!statSync(path.join(root, dir), { throwIfNoEntry: false })?.isDirectory()) continue;
  for (const file of sourceFiles(dir)) {
    files++;
    const text = readFileSync(path.join(root, file), "utf8");
    const owner = ownerOf(folders, file);
    for (const match of text.matchAll(specifier)) {
      const spec = match[2];
      if (!spec.startsWith("./") && !spec.startsWith("../")) continue;
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
      const targetOwner = ownerOf(folders, target);
      if (targetOwner === undefined || targetOwner === owner) continue;
      const line = text.slice(0, match.index).split("\n").length;
      violations.push(
        `${file}:${line}: imports "${spec}", a file of ${targetOwner}, by relative path`,
      );
    }
  }
}

if (violations.length > 0) {
  for (const v of violations) console.error(v);
  console.error(
    `\ncheck-imports: ${violations.length} relative import(s) into another package. Import the ` +
      `package by name through an entry its package.json "exports" declares (for the server's ` +
      `test helpers, @coffer/server/testing), and list it in your package.json's dependencies ` +
      `or devDependencies.`,
  );
  process.exit(1);
}
console.log(`check-imports: ${files} files, no relative import into another package`);
