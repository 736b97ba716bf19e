import { createLogger, loadConfig, startServer } from "@coffer/server";
import type { Runs } from "../args.ts";
import { CliError, ExitCode } from "../errors.ts";
import type { SERVER } from "./server.ts";

/**
 * `coffer server`: the server in this process, as `npm start` runs it
 * (loadConfig -> startServer), JSON logs on stdout, the first admin token on
 * stderr, drained on SIGTERM or SIGINT. @coffer/server is imported only
 * here (this module is loaded when the command runs), so other commands do
 * not load the database drivers; the CLI's bundle leaves it out, to be
 * imported from the installed package.
 */
export const run: Runs<typeof SERVER> = {
  async server(ctx) {
    let config: ReturnType<typeof loadConfig>;
    try {
      config = loadConfig(ctx.env);
    } catch (err) {
      throw asStartError(err);
    }
    // The server's own logger (JSON lines on stdout, credentials redacted,
    // query parameters stripped from database errors), so that `coffer
    // server` logs exactly what `npm start` logs.
    const logger = createLogger(config.logLevel);
    let server: Awaited<ReturnType<typeof startServer>>;
    try {
      server = await startServer(config, logger);
    } catch (err) {
      logger.fatal({ err }, "cannot start");
      throw asStartError(err);
    }
    await new Promise<void>((resolve, reject) => {
      const onSignal = (signal: NodeJS.Signals) => {
        process.off("SIGTERM", onSignal);
        process.off("SIGINT", onSignal);
        logger.info({ signal }, "shutting down: draining calls");
        server.stop().then(resolve, reject);
      };
      process.on("SIGTERM", onSignal);
      process.on("SIGINT", onSignal);
    });
    return ExitCode.Ok;
  },
};

/** A configuration or key problem is the operator's to fix: say what, no stack (exit 2). */
function asStartError(err: unknown): CliError {
  const e = err as Error;
  if (e?.name === "ConfigError" || e?.name === "KeyRingError") {
    return new CliError(`cannot start the server: ${e.message}`, ExitCode.Usage);
  }
  return new CliError(`cannot start the server: ${e?.message ?? String(err)}`, ExitCode.Failure);
}
