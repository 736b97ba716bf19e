import { lstat, readdir, readFile, readlink, realpath, writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { isInside, REPO_ROOT } from "./harness.ts";

/**
 * What proves that the installed packages stand alone: a trace of every
 * module the test's processes resolve, and the checks of the installation
 * itself (no link into the repository, no path of it written in a file).
 */

// The trace: preloaded with `--import` (NODE_OPTIONS) into the server, the
// CLI, the agent and the client's script, it appends every module Node
// resolves, ESM (a resolve hook, module.register) and CommonJS (require's
// resolver), to the file named by RELEASE_TRACE_FILE, one path or URL a line.
const TRACE = `import { appendFileSync } from "node:fs";
import Module, { register } from "node:module";

const file = process.env.RELEASE_TRACE_FILE;
register("./trace-hooks.mjs", import.meta.url, { data: { file } });
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (...args) {
  const resolved = resolveFilename.apply(this, args);
  appendFileSync(file, resolved + "\\n");
  return resolved;
};
`;
const TRACE_HOOKS = `import { appendFileSync } from "node:fs";

let file;
export function initialize(data) {
  file = data.file;
}
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(file, result.url + "\\n");
  return result;
}
`;

/** Writes the trace into `folder`; returns the NODE_OPTIONS and the variable that turn it on. */
export async function writeTrace(folder: string, logFile: string): Promise<Record<string, string>> {
  await writeFile(path.join(folder, "trace.mjs"), TRACE);
  await writeFile(path.join(folder, "trace-hooks.mjs"), TRACE_HOOKS);
  return {
    NODE_OPTIONS: `--import=${pathToFileURL(path.join(folder, "trace.mjs")).href}`,
    RELEASE_TRACE_FILE: logFile,
  };
}

/**
 * Reads the trace: every file it names must lie under `allowed` (Node's
 * built-ins aside). Returns how many distinct files were loaded.
 */
export async function checkTrace(logFile: string, allowed: string): Promise<number> {
  const files = new Set<string>();
  for (const line of (await readFile(logFile, "utf8")).split("\n")) {
    if (line === "" || line.startsWith("node:") || !line.includes("/")) continue;
    const file = line.startsWith("file:") ? new URL(line).pathname : line;
    files.add(file);
  }
  const outside = [...files].filter((f) => !isInside(f, allowed));
  if (outside.length > 0) {
    throw new Error(`modules resolved outside ${allowed}:\n  ${outside.join("\n  ")}`);
  }
  if (files.size === 0) throw new Error(`the trace ${logFile} is empty: was it loaded?`);
  return files.size;
}

/**
 * Checks an installation: every `@coffer/*` package is a real folder (not a
 * link, as a workspace would make), of version `version`; every symbolic
 * link under node_modules stays inside `root`; no installed file of a
 * `@coffer` package names the repository's path, and none imports the
 * server's test helpers. Returns the number of links seen.
 */
export async function checkInstallation(
  root: string,
  names: string[],
  version: string,
): Promise<number> {
  const modules = path.join(root, "node_modules");
  for (const name of names) {
    const folder = path.join(modules, name);
    const stat = await lstat(folder);
    if (!stat.isDirectory() || stat.isSymbolicLink()) {
      throw new Error(`${folder} is not a folder of its own (a link: ${stat.isSymbolicLink()})`);
    }
    const manifest = JSON.parse(await readFile(path.join(folder, "package.json"), "utf8"));
    if (manifest.version !== version) {
      throw new Error(`${name} installed at ${manifest.version}, not ${version}`);
    }
  }
  let links = 0;
  const repoPaths = [...new Set([REPO_ROOT, await realpath(REPO_ROOT)])];
  for await (const file of walk(modules)) {
    const stat = await lstat(file);
    if (stat.isSymbolicLink()) {
      links++;
      const target = path.resolve(path.dirname(file), await readlink(file));
      if (!isInside(await realpath(target), root)) {
        throw new Error(`${file} links to ${target}, outside ${root}`);
      }
      continue;
    }
    if (!stat.isFile() || !isInside(file, path.join(modules, "@coffer"))) continue;
    const text = await readFile(file, "latin1");
    for (const repo of repoPaths) {
      if (text.includes(repo)) throw new Error(`${file} names the repository's path ${repo}`);
    }
    if (/\.m?js$/.test(file) && /["'][^"']*(\/testing\/|@coffer\/server\/testing)/.test(text)) {
      throw new Error(`${file} imports the server's test helpers`);
    }
  }
  return links;
}

async function* walk(folder: string): AsyncGenerator<string> {
  for (const entry of await readdir(folder, { withFileTypes: true })) {
    const file = path.join(folder, entry.name);
    yield file;
    if (entry.isDirectory()) yield* walk(file);
  }
}

/** Fails when `folder` or a folder above it holds a node_modules, which a bare `node` would reach. */
export async function checkNoModulesAbove(folder: string): Promise<void> {
  for (let dir = folder; ; dir = path.dirname(dir)) {
    const found = await lstat(path.join(dir, "node_modules")).catch(() => undefined);
    if (found !== undefined) throw new Error(`${dir}/node_modules exists: ${folder} is not bare`);
    if (path.dirname(dir) === dir) return;
  }
}
