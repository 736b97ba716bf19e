// dist/vendor/postgres.js: the `postgres` driver (postgres-js) as this
// repository installs it, with Coffer's fix applied by patch-package
// (patches/postgres+3.4.9.patch: a write scheduled before Postgres closed
// the socket no longer kills the server). An installed @coffer/server gets
// its dependencies from the registry, without the fix, so the build carries
// the patched driver in one file and the compiled server imports it through
// the package's "#postgres" import (package.json "imports"); the sources,
// under the @coffer/source condition, import the installed package as before.
// Remove this, the import and the patch once a postgres release has the fix.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { build } from "esbuild";

// The package's CommonJS entry is cjs/src/index.js; its ESM build, the one
// Node imports, is src/ beside it.
const main = createRequire(import.meta.url).resolve("postgres");
const root = path.resolve(path.dirname(main), "..", "..");
const entry = path.join(root, "src", "index.js");
if (!readFileSync(path.join(root, "src", "connection.js"), "utf8").includes("Coffer patch")) {
  throw new Error(
    `${root} is not patched (patches/postgres+*.patch): run npm install at the repository root`,
  );
}
await build({
  entryPoints: [entry],
  outfile: "dist/vendor/postgres.js",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  legalComments: "inline",
  logLevel: "warning",
});
