// The agent as one self-contained file, dist/coffer-agent.mjs: everything it
// imports (the client, the generated API, connect, protobuf, pino, yaml,
// zod) bundled in, so that a sidecar image needs `node` and this file, no
// node_modules. Run by `npm run build` after the package's own compile.
// Its entry is src/sidecar.ts: the command, with the agent's own Headers
// installed before anything loads undici's.
import { chmodSync } from "node:fs";
import { build } from "esbuild";

const result = await build({
  entryPoints: ["src/sidecar.ts"],
  outfile: "dist/coffer-agent.mjs",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // The workspace's packages from their sources, like the package's tests.
  conditions: ["@coffer/source"],
  minify: true,
  // Stack traces map to the sources with --enable-source-maps.
  sourcemap: "linked",
  sourcesContent: false,
  legalComments: "linked",
  // A bundled CommonJS dependency (yaml, pino) may call require() for a
  // Node built-in: give the ESM bundle one.
  banner: {
    js: '#!/usr/bin/env node\nimport { createRequire as __cofferRequire } from "node:module"; const require = __cofferRequire(import.meta.url);',
  },
  metafile: true,
  logLevel: "warning",
});
chmodSync("dist/coffer-agent.mjs", 0o755);
const bytes = Object.values(result.metafile.outputs).find((o) => o.entryPoint)?.bytes ?? 0;
process.stdout.write(`dist/coffer-agent.mjs: ${(bytes / 1024).toFixed(0)} KiB\n`);
