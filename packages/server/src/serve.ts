import { ConfigError, loadConfig } from "./config.ts";
import { KeyRingError } from "./crypto/key-ring.ts";
import { DataDirLockedError } from "./db/data-dir-lock.ts";
import { createLogger } from "./logger.ts";
import { exitOnCrash } from "./ops/crash.ts";
import { startServer } from "./server.ts";

/**
 * Composition root: config -> logger -> databases and key ring -> domain ->
 * routes -> listen. Exits non-zero with a message naming the setting when the
 * configuration is wrong; drains both servers on SIGTERM or SIGINT.
 */
export async function serve(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`coffer-server: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  exitOnCrash(logger);
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(config, logger);
  } catch (err) {
    // A setting or key problem is the operator's to fix: say what, no stack.
    if (
      err instanceof KeyRingError ||
      err instanceof ConfigError ||
      err instanceof DataDirLockedError
    ) {
      process.stderr.write(`coffer-server: cannot start: ${err.message}\n`);
      process.exit(2);
    }
    logger.fatal({ err }, "cannot start");
    process.stderr.write(`coffer-server: cannot start: ${(err as Error).message ?? String(err)}\n`);
    process.exit(1);
  }
  const onSignal = (signal: NodeJS.Signals) => {
    logger.info({ signal }, "shutting down: draining calls");
    server.stop().then(
      () => process.exit(0),
      (err) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
}
