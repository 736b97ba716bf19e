/**
 * The entry of the single-file bundle, dist/coffer-agent.mjs (bundle.mjs):
 * the command (main.ts), with the agent's own `Headers` installed first, so
 * that no module of the bundle ever loads undici (see @coffer/client/node-headers). The npm
 * package's bin runs main.ts as it is, on the dependencies it was installed
 * with.
 */
import { installHeaders } from "@coffer/client/node-headers";

installHeaders();
await import("./main.ts");
