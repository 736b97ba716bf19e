/**
 * The entry of the bundle, dist/coffer.mjs (bundle.mjs): the command
 * (main.ts), with @coffer/client's own `Headers` installed first (see
 * own-headers.ts). Imports run in the order written, so it is in place
 * before main.ts and what it loads; both stay in dist/coffer.mjs, where
 * run.ts finds the package's package.json one folder up.
 */
import "./own-headers.ts";
import "./main.ts";
