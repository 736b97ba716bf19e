import { installHeaders } from "@coffer/client/node-headers";

/**
 * @coffer/client's own `Headers` in place of Node's, so that a command does
 * not load undici, tens of milliseconds of every `coffer` call's start on
 * Node 20 (see @coffer/client/node-headers). `coffer server` runs the server
 * in this process, which keeps Node's own `Headers`, the one the server is
 * tested with; a command line that merely names "server" elsewhere only
 * starts as it did before. Imported by the bundle's entry only (bundled.ts).
 */
if (!process.argv.slice(2).includes("server")) installHeaders();
