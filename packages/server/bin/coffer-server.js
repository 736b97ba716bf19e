#!/usr/bin/env node
// Runs the server from its TypeScript sources in this one process (no wrapper
// process between the signal and the server, so SIGTERM drains cleanly).
//
// The sources are bundled to one JavaScript file with esbuild at each start
// (a fraction of a second; the file is named by its content, in
// node_modules/.cache) and that file is imported by plain Node. Running them
// through tsx's loader instead costs about 90 MB of resident memory for as
// long as the server runs: on Node 20 the loader's hooks run on a thread of
// their own, with its own V8 heap, and every module's source passes through
// it. Packages stay outside the bundle and load from node_modules as usual;
// only the workspace's own TypeScript (@coffer/*) is bundled. Where the
// bundle cannot be written (a read-only install), tsx runs the sources.
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const serverRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const main = path.join(serverRoot, "src", "main.ts");

async function bundle() {
  const esbuild = await import("esbuild");
  try {
    const result = await esbuild.build({
      entryPoints: [main],
      bundle: true,
      write: false,
      platform: "node",
      format: "esm",
      target: "node20",
      // Stack traces keep the sources' file names and lines with
      // NODE_OPTIONS=--enable-source-maps; without it, nothing is loaded.
      sourcemap: "inline",
      sourcesContent: false,
      logLevel: "error",
      plugins: [
        {
          name: "coffer-externals",
          setup(build) {
            // Packages load from node_modules at run time, except the
            // workspace's own, whose entry points are TypeScript.
            build.onResolve({ filter: /^[^./]/ }, (args) =>
              args.path.startsWith("@coffer/") || args.kind === "entry-point"
                ? undefined
                : { path: args.path, external: true },
            );
            // Each module keeps its own import.meta.url, so that files found
            // beside it (the migrations, the initdb script) still are.
            build.onLoad({ filter: /\.ts$/ }, (args) => ({
              contents: readFileSync(args.path, "utf8").replaceAll(
                "import.meta.url",
                JSON.stringify(pathToFileURL(args.path).href),
              ),
              loader: "ts",
            }));
          },
        },
      ],
    });
    const code = result.outputFiles[0]?.contents;
    if (code === undefined) throw new Error("esbuild produced no output");
    return code;
  } finally {
    // esbuild's service process is not needed past this point.
    await esbuild.stop();
  }
}

async function bundled() {
  const code = await bundle();
  const name = `main-${createHash("sha256").update(code).digest("hex").slice(0, 16)}.mjs`;
  // Inside the server package's node_modules, so that the bundle resolves
  // packages exactly as the sources do.
  const dir = path.join(serverRoot, "node_modules", ".cache", "coffer-server");
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  if (!existsSync(file)) {
    // Written aside and renamed, so that a server starting at the same time
    // never imports a half-written file (the name says the content).
    const partial = `${file}.${process.pid}.tmp`;
    writeFileSync(partial, code);
    renameSync(partial, file);
  }
  // Bundles of other versions, once no server can still be loading them.
  const dayAgo = Date.now() - 86_400_000;
  for (const old of readdirSync(dir)) {
    const oldFile = path.join(dir, old);
    if (old !== name && old.startsWith("main-") && statSync(oldFile).mtimeMs < dayAgo) {
      rmSync(oldFile, { force: true });
    }
  }
  return file;
}

let file;
try {
  file = await bundled();
} catch (err) {
  process.stderr.write(
    `coffer-server: running the sources through tsx (more memory): cannot bundle them (${err instanceof Error ? err.message : String(err)})\n`,
  );
}
if (file === undefined) {
  const { register } = await import("tsx/esm/api");
  register();
  await import(pathToFileURL(main).href);
} else {
  await import(pathToFileURL(file).href);
}
