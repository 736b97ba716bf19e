/**
 * The public surface of `@coffer/server` for embedding and tests: start a
 * server from a validated configuration, and make or check access tokens.
 * Everything else under src/ is internal.
 */

export { type Config, ConfigError, loadConfig } from "./config.ts";
export { generateToken, isWellFormedToken } from "./crypto/tokens.ts";
export { createLogger } from "./logger.ts";
export { type RunningServer, startServer } from "./server.ts";
