// The CLI as bundled JavaScript, dist/coffer.mjs and its chunks in
// dist/chunks/: what the command imports (the client, the generated API,
// Connect, protobuf) bundled in, because Node takes far longer to resolve
// and load hundreds of small files of node_modules than a few large ones
// (bench/cli-start.ts measures both). Split into chunks along the CLI's
// dynamic imports, so that `coffer --version` and `--help` load the command
// tree alone (about 30 KiB), and a command its own chunks. @coffer/server
// and @coffer/agent stay outside, imported from their installed packages by
// `coffer server` and `coffer agent` only. Run by `npm run build` after the
// package's own compile; bin/coffer.js imports dist/coffer.mjs.
import { rmSync } from "node:fs";
import { build } from "esbuild";

// Chunk names carry a hash: clear the last build's, which nothing imports any more.
rmSync("dist/chunks", { recursive: true, force: true });

const result = await build({
  entryPoints: { coffer: "src/bundled.ts" },
  outdir: "dist",
  outExtension: { ".js": ".mjs" },
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // The workspace's packages from their sources, like the package's tests.
  conditions: ["@coffer/source"],
  external: ["@coffer/server", "@coffer/agent"],
  // A bundled CommonJS dependency (yaml, read by `coffer import` and written
  // by `coffer export`) may call require() for a Node built-in, which an ES
  // module has no binding for: give every output file one.
  banner: {
    js: 'import { createRequire as __cofferRequire } from "node:module"; const require = __cofferRequire(import.meta.url);',
  },
  minify: true,
  // Stack traces map to the sources with --enable-source-maps.
  sourcemap: "linked",
  sourcesContent: false,
  legalComments: "linked",
  metafile: true,
  logLevel: "warning",
});
const outputs = Object.entries(result.metafile.outputs).filter(([file]) => file.endsWith(".mjs"));
const entry = result.metafile.outputs["dist/coffer.mjs"]?.bytes ?? 0;
const total = outputs.reduce((sum, [, output]) => sum + output.bytes, 0);
const kib = (bytes) => `${(bytes / 1024).toFixed(0)} KiB`;
process.stdout.write(`dist/coffer.mjs: ${kib(entry)} (with its chunks: ${kib(total)})\n`);
